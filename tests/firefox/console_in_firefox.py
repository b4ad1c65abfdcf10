"""The console in Firefox (Debian's firefox-esr, headless), driven over Marionette with
Mozilla's marionette_driver. Run by tests/console.rs against a server it started:
    console_in_firefox.py BASE_URL ADMIN_KEY SCREENSHOT_DIR
Signs in, finds a SKU in the list, gets the inline 409 of an over-allocation, saves a sale
typed in New York time (Firefox runs with TZ=America/New_York) and sees it stored in UTC,
and sees holds placed through the API in the live view within a second. Exits non-zero
with the reason on the first thing that is not so."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from marionette_driver.by import By
from marionette_driver.marionette import Marionette

BASE, KEY, SHOTS = sys.argv[1], sys.argv[2], sys.argv[3]


def api(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(BASE + path, data=data, method=method)
    request.add_header("Authorization", "Bearer " + KEY)
    request.add_header("Content-Type", "application/json")
    if path == "/v1/holds":
        request.add_header("Idempotency-Key", "ff-%f" % time.time())
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def until(read, ok, within_s, what):
    started = time.monotonic()
    while True:
        value = read()
        if ok(value):
            return value
        if time.monotonic() - started > within_s:
            raise AssertionError("%s: still %r after %.1f s" % (what, value, within_s))
        time.sleep(0.02)


def main():
    api("PUT", "/v1/skus/FF-TEE", {"on_hand": 100})
    api("PUT", "/v1/skus/FF-CAP", {"on_hand": 10})
    port = free_port()
    profile = tempfile.mkdtemp()
    with open(os.path.join(profile, "user.js"), "w") as prefs:
        prefs.write('user_pref("marionette.port", %d);\n' % port)
    firefox = subprocess.Popen(
        ["firefox-esr", "--headless", "--marionette", "--no-remote", "--profile", profile],
        env={**os.environ, "TZ": "America/New_York"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        m = None
        for _ in range(150):
            try:
                m = Marionette(host="127.0.0.1", port=port)
                m.start_session()
                break
            except Exception:  # not listening yet
                m = None
                time.sleep(0.2)
        assert m is not None, "Firefox's Marionette did not answer"
        m.set_window_rect(width=1280, height=800)
        text = lambda id_: m.find_element(By.ID, id_).text
        shot = lambda name: open(os.path.join(SHOTS, name + ".png"), "wb").write(
            m.screenshot(format="binary"))

        m.navigate(BASE + "/console")
        m.find_element(By.ID, "key").send_keys(KEY)
        m.find_element(By.CSS_SELECTOR, "#signin-form button").click()
        until(lambda: text("sku-table"), lambda t: "FF-TEE" in t, 5, "the SKU list")
        shot("firefox-01-skus")

        m.find_element(By.CSS_SELECTOR, "nav button[data-screen=allocation]").click()
        m.find_element(By.ID, "alloc-sku").send_keys("FF-TEE")
        m.find_element(By.CSS_SELECTOR, "#alloc-load button").click()
        until(lambda: text("alloc-summary"), lambda t: "sellable" in t, 5, "the allocation")
        m.find_element(By.ID, "alloc-add").click()
        row = "#alloc-rows tbody tr:last-child "
        m.find_element(By.CSS_SELECTOR, row + ".alloc-channel").send_keys("web")
        amount = m.find_element(By.CSS_SELECTOR, row + ".alloc-amount")
        amount.clear()
        amount.send_keys("500")
        m.find_element(By.ID, "alloc-save").click()
        error = until(lambda: text("alloc-error"), lambda t: t, 5, "the inline 409")
        assert "100 sellable" in error, error
        shot("firefox-02-allocation-409")

        m.find_element(By.CSS_SELECTOR, "nav button[data-screen=sales]").click()
        m.find_element(By.ID, "sale-id").send_keys("ff")
        m.find_element(By.ID, "sale-name").send_keys("Firefox sale")
        m.execute_script("document.getElementById('sale-starts').value = '2030-11-29T08:00';"
                         "document.getElementById('sale-ends').value = '2030-11-29T20:00';")
        m.find_element(By.ID, "sale-skus").send_keys("FF-CAP")
        m.find_element(By.CSS_SELECTOR, "#sale-form button[type=submit]").click()
        until(lambda: text("sale-message"), lambda t: "saved" in t, 5, "the sale")
        sale = api("GET", "/v1/sales/ff")
        assert sale["starts_at"] == "2030-11-29T13:00:00Z", sale
        shot("firefox-03-sales")

        m.find_element(By.CSS_SELECTOR, "nav button[data-screen=live]").click()
        m.find_element(By.ID, "live-skus").send_keys("FF-TEE")
        m.find_element(By.CSS_SELECTOR, "#live-form button").click()
        until(lambda: text("live-status"), lambda t: "following" in t, 5, "the stream")
        read = lambda: m.execute_script(
            "const c = document.querySelector(\"#live-table tbody tr[data-channel=''] "
            ".live-available\"); return c ? c.textContent : '';")
        until(read, lambda t: t == "100", 5, "the live view before")
        for _ in range(3):
            api("POST", "/v1/holds", {"lines": [{"sku": "FF-TEE", "quantity": 2}],
                                       "customer_id": "ff"})
        until(read, lambda t: t == "94", 1.0, "the live view a second after the holds")
        shot("firefox-04-live")
        m.delete_session()
    finally:
        firefox.kill()
        firefox.wait()
    print("firefox: every check passed")


main()
