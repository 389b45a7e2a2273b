"""The Drizzle app: its config, drizzle-kit and its output, the generate/push/migrate steps and the lint."""
