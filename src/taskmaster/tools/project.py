"""Project tools: generate, initialize_project, models, rules, response-language.

They work on files under projectRoot on the node that answers the call: `.taskmaster/` (config,
state, generated task files) and editor rule files. None of them touches the network: the model
table is built in, and our config turns telemetry off.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess

from ..llm.config import KeyStore
from ..tasks import files
from ..tasks.errors import TaskError
from ..tasks.model import iso_now
from .registry import ToolContext, tool

CONFIG_FILE = os.path.join(".taskmaster", "config.json")
ROLES = ("main", "research", "fallback")
_SET_ARGS = (("main", "setMain"), ("research", "setResearch"), ("fallback", "setFallback"))
CUSTOM_PROVIDERS = ("openrouter", "ollama", "bedrock", "azure", "vertex", "openai-compatible")

# provider, model id, SWE-bench score (None: not known to us), cost per 1M tokens (in, out), roles,
# max tokens.
_MAIN_FB = ("main", "fallback")
_ALL = ("main", "research", "fallback")
KNOWN_MODELS = (
    ("anthropic", "claude-sonnet-4-20250514", 0.727, (3, 15), _MAIN_FB, 64000),
    ("anthropic", "claude-opus-4-20250514", 0.725, (15, 75), _MAIN_FB, 32000),
    ("anthropic", "claude-3-7-sonnet-20250219", 0.623, (3, 15), _MAIN_FB, 120000),
    ("anthropic", "claude-3-5-haiku-20241022", None, (0.8, 4), _MAIN_FB, 8192),
    ("claude-code", "sonnet", None, (0, 0), _ALL, 64000),
    ("claude-code", "opus", None, (0, 0), _ALL, 32000),
    ("openai", "gpt-4o", 0.332, (2.5, 10), _MAIN_FB, 16384),
    ("openai", "gpt-4o-mini", None, (0.15, 0.6), ("main",), 16384),
    ("openai", "o3", 0.5, (2, 8), _ALL, 100000),
    ("openai", "o4-mini", None, (1.1, 4.4), _ALL, 100000),
    ("google", "gemini-2.5-pro", None, (1.25, 10), _MAIN_FB, 65536),
    ("google", "gemini-2.5-flash", None, (0.3, 2.5), _MAIN_FB, 65536),
    ("perplexity", "sonar", None, (1, 1), ("research",), 8700),
    ("perplexity", "sonar-pro", None, (3, 15), ("main", "research"), 8700),
    ("perplexity", "sonar-reasoning-pro", None, (2, 8), _ALL, 8700),
    ("xai", "grok-3", None, (3, 15), _ALL, 131072),
    ("groq", "llama-3.3-70b-versatile", None, (0.59, 0.79), _ALL, 32768),
)
_BY_ID = {m[1]: m for m in KNOWN_MODELS}
_API_KEYS = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY", "google": "GOOGLE_API_KEY",
             "perplexity": "PERPLEXITY_API_KEY", "xai": "XAI_API_KEY", "groq": "GROQ_API_KEY",
             "openrouter": "OPENROUTER_API_KEY", "azure": "AZURE_OPENAI_API_KEY"}
DEFAULT_MODELS = {
    "main": {"provider": "anthropic", "modelId": "claude-sonnet-4-20250514", "maxTokens": 64000,
             "temperature": 0.2},
    "research": {"provider": "perplexity", "modelId": "sonar", "maxTokens": 8700, "temperature": 0.1},
    "fallback": {"provider": "anthropic", "modelId": "claude-3-7-sonnet-20250219", "maxTokens": 120000,
                 "temperature": 0.2},
}


# ---- generate -----------------------------------------------------------------------------------
@tool("generate")
async def generate(ctx: ToolContext, args: dict):
    view = ctx.service.view(ctx.root)
    tag = view.resolve_tag(args.get("tag"))
    output = args.get("output")
    directory = files.resolve_path(ctx.root, output) if output else os.path.join(ctx.root, files.TASK_FILES_DIR)
    # The cached task list is replaced, never changed in place, by later writes: safe off the loop.
    return await asyncio.to_thread(files.generate_task_files, view.tasks(tag), tag, directory)


# ---- config.json --------------------------------------------------------------------------------
def default_config(root: str) -> dict:
    return {
        "models": {role: dict(DEFAULT_MODELS[role]) for role in ROLES},
        "global": {"logLevel": "info", "debug": False, "defaultNumTasks": 10, "defaultSubtasks": 5,
                   "defaultPriority": "medium", "projectName": os.path.basename(root) or "project",
                   "responseLanguage": "English", "defaultTag": "master", "enableCodebaseAnalysis": True,
                   "enableProxy": False, "anonymousTelemetry": False},
    }


def load_config(root: str) -> dict:
    """The project's config.json with every role filled in (defaults where it has none)."""
    path = os.path.join(root, CONFIG_FILE)
    config = files.read_json(path)
    if config is None:
        return default_config(root)
    if not isinstance(config, dict):
        raise TaskError(f"{path} must hold a JSON object", "INVALID_CONFIG")
    models = config.setdefault("models", {})
    if not isinstance(models, dict):
        raise TaskError(f"{path}: \"models\" must be an object", "INVALID_CONFIG")
    for role in ROLES:
        if not isinstance(models.get(role), dict):
            models[role] = dict(DEFAULT_MODELS[role])
    if not isinstance(config.setdefault("global", {}), dict):
        raise TaskError(f"{path}: \"global\" must be an object", "INVALID_CONFIG")
    return config


def _save_config(root: str, config: dict) -> None:
    _require_root(root)
    files.write_json(os.path.join(root, CONFIG_FILE), config)


def _require_root(root: str) -> None:
    if not os.path.isdir(root):
        raise TaskError(f"Project root {root} does not exist or is not a directory", "INVALID_PROJECT_ROOT")


# ---- models -------------------------------------------------------------------------------------
@tool("models")
async def models(ctx: ToolContext, args: dict):
    config = load_config(ctx.root)
    if args.get("listAvailableModels"):
        return available_models(config)
    changes = [(role, args[key]) for role, key in _SET_ARGS if args.get(key) is not None]
    if changes:
        return set_models(ctx.root, config, changes, args)
    keys = KeyStore.for_project(ctx.root)  # the keys the AI tools use: the project's .env, then the environment
    return {"activeModels": {role: _describe(config["models"][role], keys) for role in ROLES},
            "message": "Successfully retrieved current model configuration"}


def available_models(config: dict) -> dict:
    in_use = {config["models"][role].get("modelId") for role in ROLES}
    listed = [{"provider": p, "modelId": m, "sweScore": swe, "cost": {"input": c[0], "output": c[1]},
               "allowedRoles": list(roles)}
              for p, m, swe, c, roles, _ in KNOWN_MODELS if m not in in_use]
    return {"models": listed, "message": f"Successfully retrieved {len(listed)} available models"}


def set_models(root: str, config: dict, changes: list[tuple[str, str]], args: dict) -> dict:
    """Validate every requested role first, then write config.json once."""
    flags = [p for p in CUSTOM_PROVIDERS if args.get(p)]
    if len(flags) > 1:
        raise TaskError(f"Give at most one custom provider flag (got {', '.join(flags)})", "INVALID_ARGS")
    hint = flags[0] if flags else None
    if hint == "openai-compatible" and not args.get("baseURL"):
        raise TaskError("The openai-compatible provider needs baseURL", "INVALID_ARGS")
    results = []
    for role, model_id in changes:
        model_id = model_id.strip()
        provider, warning = _provider_for(role, model_id, hint)
        entry = config["models"][role]
        entry.update(provider=provider, modelId=model_id)
        known = _BY_ID.get(model_id)
        if known is not None and provider == known[0]:
            entry["maxTokens"] = known[5]
        if hint and args.get("baseURL"):
            entry["baseURL"] = args["baseURL"]
        results.append({"role": role, "provider": provider, "modelId": model_id,
                        "message": f"Successfully set {role} model to {model_id} (Provider: {provider})",
                        "warning": warning})
    _save_config(root, config)
    if len(results) == 1:
        return results[0]
    return {"updated": results, "message": "; ".join(r["message"] for r in results)}


def _provider_for(role: str, model_id: str, hint: str | None) -> tuple[str, str | None]:
    if not model_id:
        raise TaskError("Invalid model ID: it must be a non-empty string", "INVALID_MODEL_ID")
    known = _BY_ID.get(model_id)
    if known is not None and hint in (None, known[0]):
        if role not in known[4]:
            raise TaskError(f"Model '{model_id}' cannot be used for the {role} role "
                            f"(allowed: {', '.join(known[4])})", "INVALID_ROLE")
        return known[0], None
    if hint is None:
        raise TaskError(f"Model '{model_id}' is not in taskmaster's list of known models. For a custom "
                        f"model, also pass one provider flag: {', '.join(CUSTOM_PROVIDERS)}",
                        "MODEL_NOT_FOUND")
    return hint, f"Custom {hint} model '{model_id}' set without validation: make sure it exists."


def _describe(entry: dict, keys: KeyStore) -> dict:
    known = _BY_ID.get(entry.get("modelId"))
    matches = known is not None and known[0] == entry.get("provider")
    key = _API_KEYS.get(entry.get("provider"))
    has_key = key is None or keys.secret(key) is not None  # providers without keys (ollama, claude-code)
    return {"provider": entry.get("provider"), "modelId": entry.get("modelId"),
            "sweScore": known[2] if matches else None,
            "cost": {"input": known[3][0], "output": known[3][1]} if matches else None,
            "keyStatus": {"cli": has_key, "mcp": has_key}}


# ---- response-language --------------------------------------------------------------------------
@tool("response-language")
async def response_language(ctx: ToolContext, args: dict):
    language = args["language"].strip()
    if not language:
        raise TaskError("Invalid response language: it must be a non-empty string", "INVALID_RESPONSE_LANGUAGE")
    config = load_config(ctx.root)
    config["global"]["responseLanguage"] = language
    _save_config(ctx.root, config)
    return {"message": f"Successfully set response language to: {language}", "responseLanguage": language}


# ---- rules --------------------------------------------------------------------------------------
RULES_TEXT = """# Task Master

This project plans and tracks its work with Task Master, served by the `taskmaster` MCP server.

- Call `next_task` to find what to work on, and `get_task` to read a task with its subtasks.
- Keep statuses current with `set_task_status` (pending, in-progress, review, done, ...).
- Split large tasks with `add_subtask`; record order with `add_dependency`.
- For overviews use `get_tasks` with `status`, `fields` and `limit` to keep answers small.
- Tags (`list_tags`, `use_tag`) hold separate task lists, for example one per feature branch.
- Do not edit `.taskmaster/tasks/tasks.json` by hand: the server holds the tasks
  (`task-master export` writes the file).
"""
# profile -> (rule file, shared). A shared file (CLAUDE.md, AGENTS.md, ...) may hold the user's own
# text and other profiles' blocks, so each profile writes only its own marked block there.
RULE_FILES = {
    "amp": ("AGENTS.md", True),
    "claude": ("CLAUDE.md", True),
    "cline": (os.path.join(".clinerules", "taskmaster.md"), False),
    "codex": ("AGENTS.md", True),
    "cursor": (os.path.join(".cursor", "rules", "taskmaster.mdc"), False),
    "gemini": ("GEMINI.md", True),
    "kilo": (os.path.join(".kilocode", "rules", "taskmaster.md"), False),
    "kiro": (os.path.join(".kiro", "steering", "taskmaster.md"), False),
    "opencode": ("AGENTS.md", True),
    "roo": (os.path.join(".roo", "rules", "taskmaster.md"), False),
    "trae": (os.path.join(".trae", "rules", "taskmaster.md"), False),
    "vscode": (os.path.join(".github", "instructions", "taskmaster.instructions.md"), False),
    "windsurf": (os.path.join(".windsurf", "rules", "taskmaster.md"), False),
    "zed": (".rules", True),
}
_FRONT_MATTER = {
    "cursor": "---\ndescription: Working with Task Master\nalwaysApply: true\n---\n\n",
    "vscode": "---\napplyTo: \"**\"\n---\n\n",
    "windsurf": "---\ntrigger: always_on\n---\n\n",
}


@tool("rules")
async def rules(ctx: ToolContext, args: dict):
    _require_root(ctx.root)
    profiles = list(dict.fromkeys(args["profiles"]))
    if args["action"] == "add":
        done = [{"profile": p, "path": add_rules(ctx.root, p)} for p in profiles]
        return {"action": "add", "profiles": done, "message": f"Added rules for: {', '.join(profiles)}"}
    installed = installed_profiles(ctx.root)
    removing = [p for p in profiles if p in installed]
    if removing and not (installed - set(removing)) and not args.get("force"):
        raise TaskError("Removing these profiles would leave the project without any rule profile; "
                        "pass force: true to remove them anyway", "LAST_PROFILE")
    done = [{"profile": p, "path": remove_rules(ctx.root, p)} for p in removing]
    skipped = [p for p in profiles if p not in installed]
    message = f"Removed rules for: {', '.join(removing) or 'none'}"
    if skipped:
        message += f" (not installed: {', '.join(skipped)})"
    return {"action": "remove", "profiles": done, "notInstalled": skipped, "message": message}


def installed_profiles(root: str) -> set[str]:
    return {p for p in RULE_FILES if _has_rules(root, p)}


def add_rules(root: str, profile: str) -> str:
    """Write (or refresh) the profile's rules; returns the file's path relative to the root."""
    rel, shared = RULE_FILES[profile]
    path = os.path.join(root, rel)
    if shared:
        text = _strip_block(_read_text(path), profile)
        text = (text.rstrip("\n") + "\n\n" if text.strip() else "") + _block(profile)
    else:
        text = _FRONT_MATTER.get(profile, "") + RULES_TEXT
    _write_text(path, text)
    return rel


def remove_rules(root: str, profile: str) -> str:
    rel, shared = RULE_FILES[profile]
    path = os.path.join(root, rel)
    rest = _strip_block(_read_text(path), profile).strip() if shared else ""
    if rest:
        _write_text(path, rest + "\n")
    elif os.path.exists(path):
        os.unlink(path)
    return rel


def _has_rules(root: str, profile: str) -> bool:
    rel, shared = RULE_FILES[profile]
    path = os.path.join(root, rel)
    return _begin(profile) in _read_text(path) if shared else os.path.exists(path)


def _begin(profile: str) -> str:
    return f"<!-- taskmaster rules ({profile}) -->"


def _end(profile: str) -> str:
    return f"<!-- end of taskmaster rules ({profile}) -->"


def _block(profile: str) -> str:
    return f"{_begin(profile)}\n{RULES_TEXT}{_end(profile)}\n"


def _strip_block(text: str, profile: str) -> str:
    start = text.find(_begin(profile))
    if start < 0:
        return text
    end = text.find(_end(profile), start)
    end = len(text) if end < 0 else end + len(_end(profile))
    return text[:start].rstrip("\n") + ("\n\n" if text[:start].strip() else "") + text[end:].lstrip("\n")


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskError(f"Cannot read {path}: {exc}", "FILE_READ_ERROR") from exc


def _write_text(path: str, text: str) -> None:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise TaskError(f"Cannot write {path}: {exc}", "WRITE_ERROR") from exc


# ---- initialize_project -------------------------------------------------------------------------
_GITIGNORE = ("# taskmaster", ".env", "*.log", ".DS_Store")
_GITIGNORE_TASKS = (".taskmaster/tasks/tasks.json", ".taskmaster/tasks/*.md")
_ENV_EXAMPLE = "".join(f"{key}=\n" for key in sorted(set(_API_KEYS.values())))
_EXAMPLE_PRD = """# Product requirements (example)

## Overview
What the product is, who it is for, and the problem it solves.

## Core features
- Feature: what it does, why it matters, how it roughly works.

## Technical notes
Architecture, data, interfaces, constraints.

## Milestones
The order to build things in, smallest useful version first.
"""


@tool("initialize_project")
async def initialize_project(ctx: ToolContext, args: dict):
    return await asyncio.to_thread(initialize, ctx.root, args)


def initialize(root: str, args: dict) -> dict:
    """Create `.taskmaster/` with config, state and folders (never tasks.json); keep what exists."""
    _require_root(root)
    created = []
    for sub in ("tasks", "docs", "reports", "templates"):
        path = os.path.join(root, ".taskmaster", sub)
        if not os.path.isdir(path):
            try:
                os.makedirs(path)
            except OSError as exc:
                raise TaskError(f"Cannot create {path}: {exc}", "WRITE_ERROR") from exc
            created.append(os.path.join(".taskmaster", sub))
    seeds = {CONFIG_FILE: default_config(root),
             files.STATE_FILE: {"currentTag": "master", "lastSwitched": iso_now(), "branchTagMapping": {},
                                "migrationNoticeShown": True},
             os.path.join(".taskmaster", "templates", "example_prd.txt"): _EXAMPLE_PRD,
             ".env.example": _ENV_EXAMPLE}
    for rel, content in seeds.items():
        path = os.path.join(root, rel)
        if not os.path.exists(path):
            if isinstance(content, dict):
                files.write_json(path, content)
            else:
                _write_text(path, content)
            created.append(rel)
    lines = _GITIGNORE + (() if args.get("storeTasksInGit", True) else _GITIGNORE_TASKS)
    if _extend_gitignore(os.path.join(root, ".gitignore"), lines):
        created.append(".gitignore")
    profiles = list(dict.fromkeys(args.get("rules") or ["cursor"]))
    rule_files = [add_rules(root, p) for p in profiles]
    git = bool(args.get("initGit", True)) and _git_init(root)
    return {"message": "Project initialized successfully.", "projectRoot": root, "created": created,
            "rules": [{"profile": p, "path": f} for p, f in zip(profiles, rule_files, strict=True)],
            "gitInitialized": git, "shellAliasesAdded": False, "dependenciesInstalled": False}


def _extend_gitignore(path: str, lines: tuple[str, ...]) -> bool:
    text = _read_text(path)
    present = set(text.splitlines())
    missing = [line for line in lines if line not in present]
    if not missing:
        return False
    _write_text(path, text + ("\n" if text and not text.endswith("\n") else "") + "\n".join(missing) + "\n")
    return True


def _git_init(root: str) -> bool:
    """`git init` unless git is missing or the root is already inside a work tree."""
    git = shutil.which("git")
    if git is None:
        return False
    try:
        inside = subprocess.run([git, "rev-parse", "--is-inside-work-tree"], cwd=root, capture_output=True,
                                text=True, timeout=10)
        if inside.returncode == 0 and inside.stdout.strip() == "true":
            return False
        return subprocess.run([git, "init", "-q"], cwd=root, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
