"""Server-rendered pages: the recipient's pickup page ``/p/{token}``."""
