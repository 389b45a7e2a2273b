"""The git pre-push hook: install, the hook itself, and the git facts it reads."""
