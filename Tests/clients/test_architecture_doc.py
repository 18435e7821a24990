"""docs/architecture.md's module diagram is Package.swift's: the same modules, the same
dependencies, each module's job as the comment above its target says it."""
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_the_module_diagram_matches_package_swift():
    checked = subprocess.run([os.path.join(ROOT, "scripts", "module-diagram"), "--check"],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert checked.returncode == 0, checked.stderr
