"""What tests share, imported as ``support.<module>`` (``tests/`` is on sys.path: pytest puts it there for
``tests/conftest.py``). Test modules import from here, never from each other. Each module's docstring says
how to use it.

- ``cli``: the one way to run the deploysafe command (``run_cli``, a subprocess; ``run_cli_in_process``
  for property tests), its ``CliResult`` and the console script's path.
- ``e2e``: end-to-end helpers around a live fixture app (``ds`` runs the CLI in it, ``healthy``, ``env_url``,
  ``journal_lines``, ``assert_no_secret``, ``set_config``, ``rows``) and the drizzle-kit version matrix.
- ``repo``: real git repositories for the hook tests (``git``, ``push``, ``commit_file``, ``remote_sha``,
  ``write_migration``, ``tool_env``).
- ``neon_double``: a Neon API double serving real HTTP, branches backed by real databases; the
  ``neon_double`` fixture is registered for every test by ``tests/conftest.py``.
- ``reliability_kit``: the reliability tests' stand-in app commands (``tool.sh``), fault-injecting respx
  router, in-memory Render backend and shared checks (``assert_clean``).
- ``slow_server``: a socket server that answers one byte at a time (slow body, slow headers).
- ``platforms``: recorded vendor responses and a fake clock for the platform adapter tests.
- ``ops_helpers``: config, seeded rows and a local webhook for the operations tests.
- ``tool.sh``: cheap stand-ins for ``db:generate``, ``db:push`` and the restart command, with fault knobs.
"""
