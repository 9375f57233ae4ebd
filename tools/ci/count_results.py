"""Prints `N passed, N failed` from a Bazel build-event JSON file.

Counts the test cases in each test target's JUnit XML; a target that failed without any failed
case in its XML (crash, timeout, build failure) counts as one failure, so nothing is hidden.
"""

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import unquote, urlparse


def cases(xml_path: Path) -> tuple[int, int]:
    passed = failed = 0
    # Bazel wrote this file on this machine; it is not untrusted input.
    for case in ET.parse(xml_path).iter("testcase"):  # noqa: S314
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif case.find("skipped") is None:
            passed += 1
    return passed, failed


def count(events_file: Path) -> tuple[int, int]:
    passed = failed = 0
    summarized: set[str] = set()
    unbuilt_tests: set[str] = set()
    for line in events_file.read_text().splitlines():
        event = json.loads(line)
        if "targetCompleted" in event["id"]:
            is_test = any("testSummary" in child for child in event.get("children", []))
            built = event.get("completed", {}).get("success", False)
            if is_test and not built:
                unbuilt_tests.add(event["id"]["targetCompleted"]["label"])
        summary = event.get("testSummary")
        if summary is None:
            continue
        summarized.add(event["id"]["testSummary"]["label"])
        target_passed = target_failed = 0
        for output in summary.get("passed", []) + summary.get("failed", []):
            xml = Path(unquote(urlparse(output["uri"]).path)).parent / "test.xml"
            if xml.exists():
                p, f = cases(xml)
                target_passed, target_failed = target_passed + p, target_failed + f
        if summary.get("overallStatus") != "PASSED" and target_failed == 0:
            target_failed = 1
        passed, failed = passed + target_passed, failed + target_failed
    # A test target that did not build has no summary: one failure each.
    return passed, failed + len(unbuilt_tests - summarized)


def main() -> int:
    passed, failed = count(Path(sys.argv[1]))
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
