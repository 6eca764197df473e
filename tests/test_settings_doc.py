"""README's settings tables are generated from the settings' metadata and must match it."""

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "settings_doc.py"


def load_script():
    spec = importlib.util.spec_from_file_location("settings_doc", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_settings_tables_are_up_to_date():
    done = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_a_stale_table_is_rewritten_and_the_text_around_it_kept():
    doc = load_script()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    stale = readme.replace("| `lora_r` `--lora-r` | `16` |", "| `lora_r` `--lora-r` | `8` |")
    assert stale != readme and doc.rewritten(stale) == readme
    text = "intro\n<!-- settings:train -->\nstale row\n<!-- /settings:train -->\nmiddle\n<!-- settings:prepare -->\n<!-- /settings:prepare -->\nend\n"
    fresh = doc.rewritten(text)
    assert fresh.startswith("intro\n<!-- settings:train -->\n| `config.yaml` field") and fresh.endswith("-->\nend\n")
    assert "stale row" not in fresh and "| `--val-fraction` | `0.1` | a fraction in [0, 1) |" in fresh
    assert "| `max_steps` `--max-steps` | `0` | a whole number >= 0 | optimizer steps; 0 = train by epochs |" in fresh
