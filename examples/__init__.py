"""Example host applications that use Squidie."""
