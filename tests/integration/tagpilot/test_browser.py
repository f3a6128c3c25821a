"""Acceptance 4: the page in headless Chromium — log in, upload, edit a caption, add a trigger word
to all, export. Screenshots of each step are kept in test-artifacts/tagpilot/."""

from __future__ import annotations

import re
import uuid

from lorapilot.testing.sample_photos import write_broken_files, write_photos


def test_log_in_upload_caption_trigger_and_export_in_the_browser(page, server, tmp_path):
    from playwright.sync_api import expect  # noqa: PLC0415

    photos = write_photos(tmp_path / "photos")
    chosen = [photos[stem] for stem in ("chelsea", "coffee", "rocket", "astronaut")]
    broken = write_broken_files(tmp_path / "broken")["text"]
    name = f"browser-{uuid.uuid4().hex[:6]}"

    page.goto(server.url + "/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))
    page.fill("#password", "wrong")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_have_text("wrong password")
    page.fill("#password", server.password)
    page.shot("01-login")
    page.click("button[type=submit]")
    expect(page).to_have_url(server.url + "/")

    page.fill("#new-dataset-name", name)
    page.click("#create-dataset")
    expect(page.locator("#dataset-select")).to_have_value(name)

    page.set_input_files("#upload-input", [*chosen, broken])
    page.click("#upload-button")
    expect(page.locator(".thumb")).to_have_count(4)
    expect(page.locator("#upload-result")).to_contain_text("notes.jpg: not an image")
    expect(page.locator("#status")).to_have_text("Uploaded 4 image(s); 1 refused.")
    page.shot("02-uploaded")

    page.locator(".thumb", has_text="chelsea.png").click()
    expect(page.locator("#caption-editor")).to_be_focused()
    page.fill("#caption-editor", "a ginger cat looking up")
    page.click("#save-caption")
    expect(page.locator("#status")).to_have_text("Saved caption of chelsea.png.")
    page.keyboard.press("Control+Enter")  # keyboard: save again and move to the next image
    expect(page.locator("#editor-name")).to_contain_text("coffee.jpg")
    page.keyboard.type("a cup of coffee")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#editor-name")).to_contain_text("rocket.jpg")
    page.shot("03-caption-edited")

    page.fill("#trigger-word", "lpxcat")
    page.click("#apply-trigger")
    expect(page.locator("#status")).to_have_text("trigger: changed 4 caption(s).")
    expect(page.locator(".thumb", has_text="chelsea.png")).to_contain_text("lpxcat, a ginger cat looking up")
    page.locator("#tags-panel summary").click()
    expect(page.locator("#tag-table tbody tr").first).to_contain_text("lpxcat")
    page.shot("04-trigger-word")

    expect(page.locator("#export-repeats")).to_have_value("38")  # the suggestion for 4 images
    page.fill("#export-repeats", "3")
    page.click("#export-button")
    expect(page.locator("#export-result")).to_have_text(
        f"Exported 4 images to /workspace/datasets/images/3_{name}"
    )
    page.locator("#report-panel summary").click()
    page.shot("05-exported")

    folder = server.workspace.images / f"3_{name}"
    captions = {path.stem: path.read_text().strip() for path in folder.glob("*.txt")}
    assert captions == {
        "chelsea": "lpxcat, a ginger cat looking up",
        "coffee": "lpxcat, a cup of coffee",
        "rocket": "lpxcat",
        "astronaut": "lpxcat",
    }
    assert len(list(folder.glob("*.png"))) + len(list(folder.glob("*.jpg"))) == 4
    assert page.errors == []
