"""deploysafe: safe database deploys for Drizzle ORM apps on Neon or PostgreSQL."""

__version__ = "0.1.0"
