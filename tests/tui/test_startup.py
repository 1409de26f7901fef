"""The app starts fast and light: no torch (or transformers) imported to show the first screen."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_first_screen_does_not_import_torch(tmp_path):
    script = textwrap.dedent("""
        import asyncio, sys
        from smoltrain.tui.app import SmoltrainApp
        from smoltrain.tui.screens.home import HomeScreen

        async def main():
            app = SmoltrainApp(runs_dir="runs")
            async with app.run_test(size=(80, 24)) as pilot:
                await pilot.pause()
                assert isinstance(app.screen, HomeScreen), app.screen
        asyncio.run(main())
        heavy = [m for m in ("torch", "transformers", "datasets", "trl") if m in sys.modules]
        print("HEAVY", heavy)
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout, out.stdout
