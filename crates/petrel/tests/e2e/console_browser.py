"""Drives headless Chromium through the queue console as a person would, for the e2e test
console.rs: open /queue/ (the login form comes), type the user and password and press the
button, filter the queue by a recipient domain, open a message, press Hold. Input is real
(focus, typed text, mouse clicks through the DevTools protocol over a pipe, no JavaScript of
ours in the page); after each step the page's HTML and a screenshot are kept.

usage: console_browser.py BASE_URL USER PASSWORD DOMAIN QUEUE_ID OUT_DIR
prints a JSON object: the HTML and URL after each step.
"""

import json
import os
import select
import subprocess
import sys
import time
import base64

DEADLINE = time.monotonic() + 90


class Browser:
    def __init__(self, profile):
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()
        # Chromium reads commands on descriptor 3 and writes on 4 (--remote-debugging-pipe).
        keep_r, keep_w = os.dup(to_chrome_r), os.dup(from_chrome_w)

        def descriptors():
            os.dup2(keep_r, 3)
            os.dup2(keep_w, 4)

        self.process = subprocess.Popen(
            [
                "/usr/bin/chromium",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--user-data-dir=" + profile,
                "--remote-debugging-pipe",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(profile, "chromium.log"), "wb"),
            preexec_fn=descriptors,
            pass_fds=(3, 4),
            close_fds=True,
        )
        for fd in (to_chrome_r, from_chrome_w, keep_r, keep_w):
            os.close(fd)
        self.buffer = b""
        self.next_id = 0
        self.events = []
        self.session = None

    def send(self, method, params=None, session=True):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self.to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            reply = self.read()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def read(self):
        while b"\0" not in self.buffer:
            left = DEADLINE - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time")
            ready, _, _ = select.select([self.from_chrome], [], [], left)
            if ready:
                chunk = os.read(self.from_chrome, 65536)
                if not chunk:
                    raise EOFError("Chromium closed the pipe")
                self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def wait_event(self, method):
        while True:
            for index, event in enumerate(self.events):
                if event.get("method") == method:
                    del self.events[index]
                    return event
            self.events.append(self.read())

    def open_tab(self):
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = self.send(
            "Target.attachToTarget",
            {"targetId": target["targetId"], "flatten": True},
            session=False,
        )
        self.session = attached["sessionId"]
        self.send("Page.enable")
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1100, "height": 760, "deviceScaleFactor": 1, "mobile": False},
        )

    def navigate(self, url):
        self.events.clear()
        self.send("Page.navigate", {"url": url})
        self.wait_event("Page.loadEventFired")

    def node(self, selector):
        root = self.send("DOM.getDocument")["root"]["nodeId"]
        found = self.send("DOM.querySelector", {"nodeId": root, "selector": selector})
        if not found.get("nodeId"):
            raise LookupError(f"no {selector} on the page:\n{self.html()}")
        return found["nodeId"]

    def type_into(self, selector, text):
        self.send("DOM.focus", {"nodeId": self.node(selector)})
        self.send("Input.insertText", {"text": text})

    def click(self, selector):
        """A mouse click in the middle of the element; waits for the page it loads."""
        node = self.node(selector)
        self.send("DOM.scrollIntoViewIfNeeded", {"nodeId": node})
        quad = self.send("DOM.getBoxModel", {"nodeId": node})["model"]["content"]
        x, y = sum(quad[0::2]) / 4, sum(quad[1::2]) / 4
        self.events.clear()
        for kind in ("mousePressed", "mouseReleased"):
            self.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1},
            )
        self.wait_event("Page.loadEventFired")

    def html(self):
        root = self.send("DOM.getDocument")["root"]["nodeId"]
        return self.send("DOM.getOuterHTML", {"nodeId": root})["outerHTML"]

    def url(self):
        return self.send("Runtime.evaluate", {"expression": "location.href"})["result"]["value"]

    def screenshot(self, path):
        shot = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        with open(path, "wb") as file:
            file.write(base64.b64decode(shot["data"]))

    def close(self):
        try:
            self.send("Browser.close", session=False)
        except Exception:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def main():
    base, user, password, domain, queue_id, out = sys.argv[1:7]
    profile = os.path.join(out, "profile")
    os.makedirs(profile, exist_ok=True)
    browser = Browser(profile)
    seen = {}

    def keep(step):
        seen[step] = {"url": browser.url(), "html": browser.html()}
        browser.screenshot(os.path.join(out, f"{step}.png"))

    try:
        browser.open_tab()
        browser.navigate(base + "/queue/")
        keep("login")
        browser.type_into("#user", user)
        browser.type_into("#password", password)
        browser.click("form.login button")
        keep("queue")
        browser.type_into("form.filters input[name=domain]", domain)
        browser.click("form.filters button[type=submit]")
        keep("filtered")
        browser.click(f'a[href="/queue/{queue_id}"]')
        keep("message")
        browser.click("button[value=hold]")
        keep("held")
    finally:
        browser.close()
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
