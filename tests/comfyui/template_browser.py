"""The pack's templates in ComfyUI's template browser, seen in the real frontend (headless Chromium).

Against a running server (comfy_run.py --serve): opens Workflow > Browse Templates, selects the
pack's category, screenshots it and reports every card with its title and whether its thumbnail
loaded. Run with the harness's Python (it has Playwright):

    $HARNESS_DIR/venv/bin/python tests/comfyui/template_browser.py URL PACK_FOLDER_NAME OUT_DIR
"""
import json
import os
import sys
import time
import urllib.parse
import urllib.request

HARNESS = os.environ.get("HARNESS_TOOLS", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "tools", "comfy-harness"))
sys.path.insert(0, HARNESS)
from ui_workflow import CHROMIUM_ARGS, JS_WAIT_READY, find_chromium  # noqa: E402  (the harness's own helpers)

# the frontend fetches each thumbnail and shows it as a blob: URL
SHOWN = "() => [...document.querySelectorAll('img')].filter(i => i.src.startsWith('blob:') && i.naturalWidth > 0).length"


def main(url: str, pack: str, out: str) -> int:
    from playwright.sync_api import sync_playwright

    os.makedirs(out, exist_ok=True)
    report = {"url": url, "pack": pack}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=find_chromium(None), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()
        fetched = {}

        def thumbnail(response):
            path = urllib.parse.unquote(urllib.parse.urlparse(response.url).path)
            if f"/workflow_templates/{pack}/" in path and path.endswith(".jpg"):
                fetched[os.path.basename(path)] = {"status": response.status, "type": response.headers.get("content-type")}

        page.on("response", thumbnail)
        page.goto(url, wait_until="domcontentloaded", timeout=120_000)
        page.wait_for_function(JS_WAIT_READY, timeout=180_000, polling=250)
        page.wait_for_timeout(1500)
        if not page.get_by_text(pack, exact=True).count():  # the browser opens by itself on a fresh profile only
            page.evaluate("() => window.app.extensionManager.command.execute('Comfy.BrowseTemplates')")
            page.wait_for_timeout(1500)
        page.get_by_text(pack, exact=True).first.click()
        templates = json.loads(urllib.request.urlopen(url + "/workflow_templates", timeout=30).read())[pack]
        deadline = time.monotonic() + 30
        page.mouse.move(900, 600)  # over the grid of cards
        while time.monotonic() < deadline and len(fetched) < len(templates):
            page.mouse.wheel(0, 400)  # the grid loads thumbnails as cards scroll into view
            page.wait_for_timeout(500)
        page.mouse.wheel(0, -4000)
        page.wait_for_timeout(800)
        report["templates"] = sorted(templates)
        report["thumbnails"] = fetched
        report["thumbnails_shown"] = page.evaluate(SHOWN)
        report["titles"] = page.evaluate(
            "() => [...document.querySelectorAll('[data-testid^=\"template-workflow-\"], .template-card, .p-card')]"
            ".map(c => c.innerText.split('\\n')[0]).filter(Boolean)")
        shot = os.path.join(out, "template_browser.png")
        page.screenshot(path=shot)
        report["screenshot"] = shot
        browser.close()
    report["ok"] = (sorted(report["titles"]) == report["templates"]
                    and all(report["thumbnails"].get(name + ".jpg", {}).get("status") == 200 for name in report["templates"]))
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
