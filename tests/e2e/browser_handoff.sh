#!/bin/sh
# The browser of the MCP clients the end-to-end suite runs (`BROWSER=` this script): instead of
# opening a window it appends the URL to the file `PORTICO_E2E_OPENED_URLS` names, where the
# test's Playwright driver takes it and opens it in headless Chromium (browser.py).
printf '%s\n' "$1" >> "${PORTICO_E2E_OPENED_URLS:?PORTICO_E2E_OPENED_URLS is not set}"
