"""Local fake platform servers (real sockets on 127.0.0.1) that speak each platform's wire format."""
