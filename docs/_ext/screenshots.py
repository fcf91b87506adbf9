"""Take the README's screenshots of the site and the explorer (headless Chromium, Playwright).

Build the site first (``python -m sphinx -W -b html docs docs/_build/html``), then::

    python docs/_ext/screenshots.py            # writes figures/site_tutorial.png, figures/explorer.png
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "docs" / "_build" / "html"

EXPLORER_SETTINGS = {
    "ndim": 2, "shape": [14, 20], "kernelSize": [5, 5], "dilation": [2, 2], "stride": [1, 1],
    "isCausal": [False, False], "query": [1, 18], "dilations": "1, 2, 1, 4",
}


def _browser(playwright):
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if Path(path).exists():
        return playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
    return playwright.chromium.launch()


def tutorial_shot(page, out: Path, tutorial: str) -> None:
    """A window on a tutorial page ending at its first figure: text, code, printed output, figure."""
    page.set_viewport_size({"width": 1280, "height": 1000})
    page.goto((HTML / "tutorials" / f"{tutorial}.html").as_uri())
    figure = page.locator("article .cell_output img").first
    top = page.evaluate("el => el.getBoundingClientRect().top + window.scrollY", figure.element_handle())
    height = min(figure.bounding_box()["height"], 430)
    page.evaluate("y => window.scrollTo(0, y)", max(0, top + height + 20 - 1000))
    page.mouse.move(1270, 990)  # no hover effects, no focus ring
    page.screenshot(path=str(out))


def explorer_shot(page, out: Path) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto((HTML / "dinat_explorer.html").as_uri())
    page.evaluate("cfg => window.dinat.setConfig(cfg)", EXPLORER_SETTINGS)
    page.screenshot(path=str(out), full_page=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tutorial", default="02_dilation_and_receptive_fields",
                        help="the tutorial page to show (file stem)")
    parser.add_argument("--out", type=Path, default=ROOT / "figures")
    args = parser.parse_args()
    if not (HTML / "index.html").exists():
        raise SystemExit(f"screenshots: build the site first; {HTML / 'index.html'} does not exist.")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(device_scale_factor=1)
        tutorial_shot(page, args.out / "site_tutorial.png", args.tutorial)
        explorer_shot(page, args.out / "explorer.png")
        browser.close()
    print(f"wrote {args.out / 'site_tutorial.png'} and {args.out / 'explorer.png'}")


if __name__ == "__main__":
    main()
