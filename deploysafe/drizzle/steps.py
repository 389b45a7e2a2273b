"""``db:generate`` and ``db:push`` with the truth about what happened.

drizzle-kit exits 0 after a refused prompt and after a failed statement, so the exit code
alone says little. A step succeeds only when the exit code is 0, no prompt/TTY/error
pattern of :mod:`deploysafe.drizzle.output` is in its output, and for push, the live
database matches the schema afterwards.

How push is verified
    1. A fingerprint of the live schema (:func:`schema_fingerprint`: tables, columns, types,
       defaults, constraints, indexes, enums, domains, sequences and their owning columns, views,
       row-level security and policies, grants and default privileges, functions and
       procedures, triggers, rules, extensions, owners and comments in every user schema,
       read from pg_catalog in one query) is taken before and after the push. A changed fingerprint means
       production changed; it tells a push that applied nothing (failure before production
       changed, exit 3) from one that applied part of its statements (failure after
       production changed: the deploy rolls back).
    2. After a push that reported success, the push command is run again as a read-only dry
       run (:func:`deploysafe.drizzle.kit.dry_run_command`: ``--strict --verbose`` on 0.x,
       ``--explain`` on 1.0, where ``--strict`` does nothing) with
       ``PGOPTIONS=-c default_transaction_read_only=on`` (honoured by node-postgres).
       drizzle-kit re-introspects the live database and diffs it against the schema: "No
       changes detected" means the database matches. Any other outcome means it does not;
       when the statements still pending are ones push just applied, push does not converge
       (e.g. drizzle-kit 0.25 re-adds a foreign key whose name PostgreSQL truncated to 63
       characters) and the error names them. The check cannot change anything: stdin is
       closed so every approval prompt is refused, and even if a ``--force`` in the user's
       script skipped the prompt, the read-only session rejects each statement. The
       fingerprint is compared once more to prove it. A check that hangs past its timeout
       leaves the push unverified (a warning), not failed: probes judge the deploy.

Every step is watched while it runs: a prompt that waits for an answer ends the step at
once (:func:`deploysafe.drizzle.output.stop_reason`), it never waits out the timeout.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import psycopg

from deploysafe.config import LoadedConfig
from deploysafe.drizzle import kit as drizzle_kit
from deploysafe.drizzle import layout as drizzle_layout
from deploysafe.drizzle import migrator, pkgmanager
from deploysafe.drizzle import output as drizzle_patterns
from deploysafe.drizzle.app import normalise, read_app
from deploysafe.drizzle.target import step_env
from deploysafe.errors import Interrupted, StepError, StepTimeout
from deploysafe.process import StepResult, run_step
from deploysafe.redact import redact, register_secret, url_password

OnLine = Callable[[str], None] | None
T = TypeVar("T")

READ_ONLY_PGOPTIONS = "-c default_transaction_read_only=on"

# Everything a push (any SQL it runs) can change in the database, one row per object, read from pg_catalog:
# a partial push that changed only, say, a policy or a grant must still read as "production changed".
# Cluster-wide objects (roles, tablespaces) are out of reach of a rollback to a snapshot and left out.
_FINGERPRINT_SQL = """
WITH ns AS (
  SELECT oid, nspname, nspowner, nspacl FROM pg_namespace
  WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND nspname NOT LIKE 'pg_temp_%'
    AND nspname NOT LIKE 'pg_toast_temp_%'
)
SELECT 'schema', nspname::text, pg_get_userbyid(nspowner) || coalesce(' acl ' || nspacl::text, '') FROM ns
UNION ALL
SELECT 'relation', ns.nspname || '.' || c.relname,
       c.relkind::text || ' owner ' || pg_get_userbyid(c.relowner) || ' ' || c.relpersistence::text
       || CASE WHEN c.relrowsecurity THEN ' row-level-security' ELSE '' END
       || CASE WHEN c.relforcerowsecurity THEN ' forced' ELSE '' END || ' replica ' || c.relreplident::text
       || coalesce(' acl ' || c.relacl::text, '') || coalesce(' options ' || c.reloptions::text, '')
       || coalesce(' partition ' || pg_get_expr(c.relpartbound, c.oid), '')
       || coalesce(' partitioned by ' || pg_get_partkeydef(c.oid), '')
  FROM pg_class c JOIN ns ON ns.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c')
UNION ALL
SELECT 'inherits', ns.nspname || '.' || c.relname, i.inhparent::regclass::text || ' ' || i.inhseqno
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN ns ON ns.oid = c.relnamespace
UNION ALL
SELECT 'column', ns.nspname || '.' || c.relname || '.' || a.attname,
       format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
       || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '') || coalesce(' identity ' || nullif(a.attidentity::text, ''), '')
       || coalesce(' generated ' || nullif(a.attgenerated::text, ''), '')
       || CASE WHEN a.attcollation <> t.typcollation THEN ' collate ' || a.attcollation::regcollation::text ELSE '' END
       || coalesce(' acl ' || a.attacl::text, '')
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN ns ON ns.oid = c.relnamespace
  JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c')
UNION ALL
SELECT 'constraint', ns.nspname || '.' || c.relname || '.' || con.conname, pg_get_constraintdef(con.oid)
  FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN ns ON ns.oid = c.relnamespace
UNION ALL
SELECT 'domain constraint', ns.nspname || '.' || t.typname || '.' || con.conname, pg_get_constraintdef(con.oid)
  FROM pg_constraint con JOIN pg_type t ON t.oid = con.contypid JOIN ns ON ns.oid = t.typnamespace
UNION ALL
SELECT 'index', ns.nspname || '.' || i.relname, pg_get_indexdef(i.oid)
  FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN ns ON ns.oid = i.relnamespace
UNION ALL
SELECT 'type', ns.nspname || '.' || t.typname,
       t.typtype::text || ' owner ' || pg_get_userbyid(t.typowner) || coalesce(' acl ' || t.typacl::text, '')
       || CASE WHEN t.typtype = 'd' THEN ' over ' || format_type(t.typbasetype, t.typtypmod)
               || CASE WHEN t.typnotnull THEN ' not null' ELSE '' END || coalesce(' default ' || t.typdefault, '')
          ELSE '' END
       || coalesce(' range of ' || (SELECT format_type(r.rngsubtype, NULL) FROM pg_range r WHERE r.rngtypid = t.oid), '')
       || coalesce(' labels ' || (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
                                  FROM pg_enum e WHERE e.enumtypid = t.oid), '')
  FROM pg_type t JOIN ns ON ns.oid = t.typnamespace
  WHERE (t.typrelid = 0 OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c')
    AND NOT EXISTS (SELECT 1 FROM pg_type e WHERE e.typarray = t.oid)
UNION ALL
SELECT 'view', ns.nspname || '.' || c.relname, pg_get_viewdef(c.oid)
  FROM pg_class c JOIN ns ON ns.oid = c.relnamespace WHERE c.relkind IN ('v', 'm')
UNION ALL
SELECT 'sequence', ns.nspname || '.' || c.relname,
       format_type(s.seqtypid, NULL) || ' start ' || s.seqstart || ' by ' || s.seqincrement || ' min ' || s.seqmin
       || ' max ' || s.seqmax || ' cache ' || s.seqcache || CASE WHEN s.seqcycle THEN ' cycle' ELSE '' END
       || coalesce(' owned by ' || (SELECT tc.oid::regclass::text || '.' || a.attname || ' ' || d.deptype::text
                                    FROM pg_depend d JOIN pg_class tc ON tc.oid = d.refobjid
                                    JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                      AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
                                    LIMIT 1), '')
  FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN ns ON ns.oid = c.relnamespace
UNION ALL
SELECT 'policy', p.schemaname || '.' || p.tablename || '.' || p.policyname,
       p.permissive || ' ' || p.cmd || ' to ' || p.roles::text || coalesce(' using ' || p.qual, '')
       || coalesce(' check ' || p.with_check, '')
  FROM pg_policies p WHERE p.schemaname IN (SELECT nspname FROM ns)
UNION ALL
SELECT 'function', ns.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       CASE WHEN p.prokind = 'a' THEN 'aggregate ' || pg_get_function_result(p.oid) ELSE pg_get_functiondef(p.oid) END
       || ' owner ' || pg_get_userbyid(p.proowner) || coalesce(' acl ' || p.proacl::text, '')
  FROM pg_proc p JOIN ns ON ns.oid = p.pronamespace
UNION ALL
SELECT 'trigger', ns.nspname || '.' || c.relname || '.' || t.tgname, pg_get_triggerdef(t.oid) || ' ' || t.tgenabled::text
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN ns ON ns.oid = c.relnamespace WHERE NOT t.tgisinternal
UNION ALL
SELECT 'rule', r.schemaname || '.' || r.tablename || '.' || r.rulename, r.definition
  FROM pg_rules r WHERE r.schemaname IN (SELECT nspname FROM ns)
UNION ALL
SELECT 'statistics', ns.nspname || '.' || s.stxname, pg_get_statisticsobjdef(s.oid)
  FROM pg_statistic_ext s JOIN ns ON ns.oid = s.stxnamespace
UNION ALL
SELECT 'event trigger', e.evtname::text, e.evtevent || ' ' || e.evtenabled::text || ' ' || e.evtfoid::regproc::text
       || coalesce(' ' || e.evttags::text, '')
  FROM pg_event_trigger e
UNION ALL
SELECT 'extension', x.extname::text, x.extversion || ' in ' || x.extnamespace::regnamespace::text FROM pg_extension x
UNION ALL
SELECT 'default privileges', pg_get_userbyid(d.defaclrole) || ' ' || coalesce(n.nspname, '') || ' ' || d.defaclobjtype::text,
       d.defaclacl::text
  FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
UNION ALL
SELECT 'database', '', coalesce(' acl ' || d.datacl::text, '')
       || coalesce(' settings ' || (SELECT string_agg(s.setrole || ':' || s.setconfig::text, ';' ORDER BY s.setrole)
                                    FROM pg_db_role_setting s WHERE s.setdatabase = d.oid), '')
  FROM pg_database d WHERE d.datname = current_database()
UNION ALL
SELECT 'comment', pg_describe_object(d.classoid, d.objoid, d.objsubid), d.description
  FROM pg_description d WHERE d.objoid >= 16384
ORDER BY 1, 2, 3
"""


@dataclass(frozen=True)
class GenerateResult:
    step: StepResult
    new_files: list[Path]
    sql: str
    baseline: bool = False  # the first migration of an empty folder: the whole schema, not the change


@dataclass(frozen=True)
class PushResult:
    step: StepResult
    statements_applied: bool  # the live schema changed
    verified: bool  # a read-only dry check found no pending changes
    unverified_reason: str | None = None  # why the check could not say (verified is then False)


@dataclass(frozen=True)
class PushPlan:
    """What push would execute, from a read-only dry run (:func:`plan_push`)."""

    step: StepResult
    statements: list[str]
    no_changes: bool
    failure: StepError | None = None  # push would stop at a question or fail: raise it after linting
    understood: bool = True  # the dry run listed statements, said "No changes detected", or failed

    @property
    def sql(self) -> str:
        return "\n".join(s if s.rstrip().endswith(";") else s + ";" for s in self.statements)


def schema_fingerprint(database_url: str) -> str:
    """A stable sha256 of the live schema's shape (not its data) in every non-system schema."""
    register_secret(url_password(database_url))
    try:
        with psycopg.connect(database_url, connect_timeout=15, autocommit=True) as conn:
            rows = conn.execute(_FINGERPRINT_SQL).fetchall()
    except psycopg.Error as e:
        raise StepError(
            f"cannot read the database schema: {redact(str(e)).strip()}",
            hint="check that DATABASE_URL points at a reachable PostgreSQL and the role may read pg_catalog",
        ) from None
    digest = hashlib.sha256()
    for row in rows:
        digest.update("\x1f".join(str(v) for v in row).encode())
        digest.update(b"\x1e")
    return digest.hexdigest()


def migrations_dir(loaded: LoadedConfig) -> Path:
    """``[app] migrations_dir``, else drizzle.config ``out``, relative to the app folder."""
    app_dir = loaded.app_dir
    rel = loaded.config.app.migrations_dir or normalise(read_app(app_dir).out) or "drizzle"
    p = Path(rel)
    return p if p.is_absolute() else app_dir / p


def _step_env(loaded: LoadedConfig, database_url: str) -> dict[str, str]:
    return step_env(loaded, database_url)


def _sql_files(folder: Path) -> dict[Path, bytes]:
    if not folder.is_dir():
        return {}
    return {p: p.read_bytes() for p in sorted(folder.rglob("*.sql"))}


def _run(name: str, command: str, loaded: LoadedConfig, env: dict[str, str], on_line: OnLine) -> StepResult:
    """A drizzle-kit step, ended at once when it stops at a question."""
    return run_step(name, command, cwd=loaded.app_dir, env=env, timeout=loaded.config.app.step_timeout,
                    on_line=on_line, stop_when=drizzle_patterns.stop_reason, pass_env=loaded.config.app.pass_env)


def _fail_on_patterns(step: StepResult, loaded: LoadedConfig, *, what: str, production_changed: bool = False) -> None:
    matches = drizzle_patterns.find(step.output)
    manager = pkgmanager.detect(loaded.app_dir)
    if step.stopped_at is not None:
        hint = drizzle_patterns.render_hint(matches[0].pattern, manager) if matches else None
        raise StepError(
            f"{step.name}: drizzle-kit stopped at a question nobody can answer here, so the step was ended at once"
            f" ({what.replace(', although it exited 0', '')}): "
            + (drizzle_patterns.describe(matches) if matches else step.stopped_at),
            step=step.name, production_changed=production_changed, hint=hint, output=step.output,
            patterns=[m.pattern.name for m in matches],
        )
    if step.exit_code != 0:
        detail = f": {drizzle_patterns.describe(matches)}" if matches else ""
        raise StepError(
            f"{step.name}: `{step.command}` exited with code {step.exit_code}{detail}",
            step=step.name,
            production_changed=production_changed,
            hint=drizzle_patterns.render_hint(matches[0].pattern, manager) if matches else f"run `{step.command}` by hand to see why it fails",
            output=step.output,
        )
    if matches:
        raise StepError(
            f"{step.name}: {what}, although it exited 0: {drizzle_patterns.describe(matches)}",
            step=step.name,
            production_changed=production_changed,
            hint=drizzle_patterns.render_hint(matches[0].pattern, manager),
            output=step.output,
            patterns=[m.pattern.name for m in matches],
        )


def generate(loaded: LoadedConfig, database_url: str, *, on_line: OnLine = None) -> GenerateResult:
    """Run ``[app] generate``; report the migration files it created and their SQL."""
    app = loaded.config.app
    folder = migrations_dir(loaded)
    before = _sql_files(folder)
    before_migrations = drizzle_layout.migrations(folder)
    if not app.generate:  # the app has no generate step ([app] generate = "")
        return GenerateResult(step=StepResult("generate", "", 0, "", 0.0), new_files=[], sql="")
    step = _run("generate", app.generate, loaded, _step_env(loaded, database_url), on_line)
    _fail_on_patterns(step, loaded, what="generation stopped at a question or an error")
    after = _sql_files(folder)
    new_files = [p for p in after if p not in before]
    sql = "\n".join(after[p].decode("utf-8", errors="replace") for p in new_files)
    return GenerateResult(step=step, new_files=new_files, sql=sql,
                          baseline=drizzle_layout.is_baseline(before_migrations, new_files))


def dry_check_command(push_command: str, version: drizzle_kit.KitVersion = drizzle_kit.UNKNOWN) -> str:
    """The push command with the read-only dry-run flags of ``version`` passed through to drizzle-kit."""
    return drizzle_kit.dry_run_command(push_command, version)


def _dry_run(loaded: LoadedConfig, env: dict[str, str], name: str, on_line: OnLine,
             hints: list[dict[str, object]] | None = None) -> StepResult:
    command = dry_check_command(loaded.config.app.push, drizzle_kit.kit_version(loaded.app_dir))
    if hints:
        command = drizzle_kit.with_hints(command, hints)
    return _run(name, command, loaded, {**env, "PGOPTIONS": READ_ONLY_PGOPTIONS}, on_line)


def plan_push(loaded: LoadedConfig, database_url: str, *, on_line: OnLine = None) -> PushPlan:
    """The statements push would execute against ``database_url``, from a read-only dry run (nothing changes).

    A question the push itself would stop at (data loss, truncate, rename, 1.0's missing
    hints) or an error is kept in ``failure``: the caller lints the listed statements first,
    so a destructive statement is named as such, then raises it (before production changed).
    """
    before = schema_fingerprint(database_url)
    step = _dry_run(loaded, _step_env(loaded, database_url), "push-plan", on_line)
    statements = drizzle_kit.planned_statements(step.output)
    hints = drizzle_kit.data_loss_hints(step.output)
    renames_open = any(m.pattern.name == "rename-hint-missing" for m in drizzle_patterns.find(step.output))
    if not statements and hints and not renames_open:
        # drizzle-kit 1.0 lists no statement while a data-loss decision is open: confirm it for this
        # read-only explain only, to lint the statements behind it (push itself still stops there).
        listed = _dry_run(loaded, _step_env(loaded, database_url), "push-plan", on_line, hints)
        statements = drizzle_kit.planned_statements(listed.output)
    if _fingerprint_after(database_url, step="push-plan") != before:  # impossible read-only; prove it
        raise StepError("push-plan: the read-only dry run changed the database schema", step="push-plan",
                        production_changed=True, hint="report this as a deploysafe bug", output=step.output)
    no_changes = not statements and bool(drizzle_patterns.NO_CHANGES.search(drizzle_patterns.clean(step.output)))
    unexpected = [m for m in drizzle_patterns.find(step.output) if m.pattern.name not in _DRY_RUN_EXPECTED]
    failure: StepError | None = None
    if unexpected:
        failure = StepError(
            f"push would stop at a question or an error (seen in its read-only dry run): "
            f"{drizzle_patterns.describe(unexpected)}",
            step="push-plan", output=step.output,
            hint=drizzle_patterns.render_hint(unexpected[0].pattern, pkgmanager.detect(loaded.app_dir)),
            patterns=[m.pattern.name for m in unexpected],
        )
    # A push command whose dry run says neither (a custom script): nothing to lint from it, not a failure;
    # the check after push still proves the result.
    return PushPlan(step=step, statements=statements, no_changes=no_changes, failure=failure,
                    understood=bool(statements or no_changes or failure))


# The dry run's own approval question, and what a --force in the user's command makes of it
# (statements rejected by the read-only session): expected, not failures.
_DRY_RUN_EXPECTED = frozenset({"strict-approval", "tty-required", "uncaught-error", "database-error"})


def _fingerprint_after(database_url: str, *, step: str) -> str:
    """The fingerprint once a push may have run; unreadable means we must assume production changed."""
    try:
        return schema_fingerprint(database_url)
    except StepError as e:
        raise StepError(
            f"{step}: cannot read the schema after the push, so whether it changed is unknown: {e.message}",
            step=step, production_changed=True, hint="deploysafe treats production as changed and rolls back",
        ) from None


def _changed_since(database_url: str, before: str) -> bool:
    """After a stopped push: did the schema change? Unreadable counts as changed (roll back to be safe)."""
    try:
        return _fingerprint_after(database_url, step="push") != before
    except StepError:
        return True


def _rethrow(e: StepError, production_changed: bool) -> StepError:
    """The same error (e.g. a StepTimeout) marked with whether production changed."""
    return type(e)(e.message, hint=e.hint, step=e.step, production_changed=production_changed, **e.context)


def push(loaded: LoadedConfig, database_url: str, *, on_line: OnLine = None,
         planned: list[str] | None = None) -> PushResult:
    """Run ``[app] push`` and prove the live database now matches the schema (module docstring).

    ``planned``: the statements :func:`plan_push` listed beforehand, to tell a push that does
    not converge from one that stopped half-way.
    """
    app = loaded.config.app
    env = _step_env(loaded, database_url)
    before = schema_fingerprint(database_url)
    try:
        step = _run("push", app.push, loaded, env, on_line)
    except StepError as e:  # killed at its timeout, perhaps half-way through its statements
        raise _rethrow(e, _fingerprint_after(database_url, step="push") != before) from None
    except (KeyboardInterrupt, Interrupted) as e:  # a signal: run_step has ended the push's process group
        raise Interrupted(f"push stopped: {e or 'interrupted'}", production_changed=_changed_since(database_url, before)) from None
    after = _fingerprint_after(database_url, step="push")
    changed = before != after
    what = (
        "push applied part of its statements and then stopped; production changed"
        if changed
        else "push applied nothing"
    )
    _fail_on_patterns(step, loaded, what=what, production_changed=changed)
    clean_out = drizzle_patterns.clean(step.output)
    if drizzle_patterns.NO_CHANGES.search(clean_out) and not changed:
        return PushResult(step=step, statements_applied=False, verified=True)
    try:
        check = _dry_run(loaded, env, "push-verify", on_line)
    except StepTimeout as e:
        if changed and drizzle_patterns.CHANGES_APPLIED.search(clean_out):
            # push said it applied its statements and the schema changed; a check that hangs says
            # nothing against that: leave it to the probes rather than roll a good deploy back.
            return PushResult(step=step, statements_applied=True, verified=False,
                              unverified_reason=f"the read-only check after push did not finish: {e.message}")
        raise _rethrow(e, changed) from None
    except StepError as e:
        raise _rethrow(e, changed) from None
    except (KeyboardInterrupt, Interrupted) as e:
        raise Interrupted(f"push-verify stopped: {e or 'interrupted'}", production_changed=changed) from None
    if _fingerprint_after(database_url, step="push-verify") != after:  # impossible read-only; prove it
        raise StepError(
            "push-verify: the read-only dry check changed the database schema",
            step="push-verify", production_changed=True,
            hint="report this as a deploysafe bug; the deploy is rolled back", output=check.output,
        )
    if check.exit_code == 0 and drizzle_patterns.NO_CHANGES.search(drizzle_patterns.clean(check.output)):
        return PushResult(step=step, statements_applied=changed, verified=True)
    pending = drizzle_kit.planned_statements(check.output)
    again = [s for s in pending if drizzle_kit.normalised([s]) & drizzle_kit.normalised(planned or [])]
    if changed and again:
        raise StepError(
            f"push does not converge: it applied its statements, yet drizzle-kit would run {len(again)} of them "
            f"again on every push: {_one_line(' '.join(again))}",
            step="push", production_changed=True,
            hint="drizzle-kit and the database disagree on these objects; a common cause is a constraint or index "
                 "name over 63 characters, which PostgreSQL truncates (give it a shorter name in the schema)",
            output=step.output + "\n--- dry check ---\n" + check.output, statements=again,
        )
    raise StepError(
        f"push reported success but the database does not match the schema afterwards"
        f" ({'part of the change was applied' if changed else 'nothing was applied'})"
        + (f"; still pending: {_one_line(' '.join(pending))}" if pending else ""),
        step="push",
        production_changed=changed,
        hint=f"run `{check.command}` by hand against a copy of the database to see what differs",
        output=step.output + "\n--- dry check ---\n" + check.output,
    )


def _one_line(text: str) -> str:
    return text if len(text) <= 500 else text[:499] + "…"


def run_migrations(loaded: LoadedConfig, database_url: str, *, on_line: OnLine = None) -> PushResult:
    """workflow = migrate: run ``[app] migrate`` and prove the migrations table now matches the journal.

    Proof: every journal entry is recorded with its file's hash (:mod:`deploysafe.drizzle.migrator`),
    and the schema fingerprint tells whether anything changed. Nothing pending is success.
    """
    app = loaded.config.app
    folder = migrations_dir(loaded)
    before_state = migrator.state(loaded, database_url, folder)
    migrator.refuse_unappliable(before_state, "this database")
    before = schema_fingerprint(database_url)
    env = _step_env(loaded, database_url)
    try:
        step = _run("migrate", app.migrate, loaded, env, on_line)
    except StepError as e:
        raise _rethrow(e, _fingerprint_after(database_url, step="migrate") != before) from None
    after = _fingerprint_after(database_url, step="migrate")
    changed = before != after
    what = ("migrate changed the schema and then stopped; production changed" if changed
            else "migrate applied nothing")
    _fail_on_patterns(step, loaded, what=what, production_changed=changed)
    try:
        after_state = migrator.state(loaded, database_url, folder)
    except StepError as e:
        raise _rethrow(e, changed) from None
    wrong = after_state.mismatches()
    if wrong:
        schema, table = migrator.table_name(loaded)
        raise StepError(
            f"migrate exited 0 but {schema}.{table} does not match {folder / 'meta' / '_journal.json'}: "
            + "; ".join(wrong[:5]) + (f" (and {len(wrong) - 5} more)" if len(wrong) > 5 else ""),
            step="migrate", production_changed=changed or after_state.applied != before_state.applied,
            hint=f"check that `{app.migrate}` runs drizzle's migrator on {folder} and records into {schema}.{table} "
            "([app] migrations_schema / migrations_table, or migrations.schema/table in drizzle.config)",
            output=step.output,
        )
    return PushResult(step=step, statements_applied=changed or after_state.applied != before_state.applied,
                      verified=True)


def untouched(loaded: LoadedConfig, production_url: str, step: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` (a step that must not touch production) and prove by fingerprint that it did not.

    A change means the app's tooling reached production although deploysafe pointed it
    elsewhere: the error names the variables the app's config reads and those deploysafe set.
    """
    before = schema_fingerprint(production_url)
    try:
        result = fn()
    finally:
        now = _fingerprint_after(production_url, step=step)
        if now != before:
            app = read_app(loaded.app_dir)
            reads = [*app.url_vars, *app.part_vars.values()]
            cfg = app.config_file.name if app.config_file else "the app's drizzle config"
            raise StepError(
                f"{step}: production's schema changed during a step that must not touch it; the app's tooling "
                f"reached production instead of the database deploysafe chose ("
                + (f"{cfg} reads {', '.join(reads)}" if reads else f"{cfg} does not say which variable it reads")
                + f"; deploysafe set {', '.join(loaded.config.app.database_env + list(loaded.config.app.database_env_parts.values()))})",
                step=step, production_changed=True,
                hint="set [app] database_env (and database_env_parts) to the variables the app really reads, and check "
                "that no env file it loads overrides them",
            )
    return result


def apply(
    loaded: LoadedConfig, database_url: str, *, on_line: OnLine = None, planned: list[str] | None = None
) -> PushResult:
    """Apply the change the configured workflow's way: ``[app] push`` (``planned``: what its dry run listed),
    or ``[app] migrate``."""
    if loaded.config.app.workflow == "migrate":
        return run_migrations(loaded, database_url, on_line=on_line)
    return push(loaded, database_url, on_line=on_line, planned=planned)
