"""JUnit XML, one file per target (``junit-<target>.xml``), written with junit-xml.

Each cell becomes a ``<testsuite name="<target>.<suite>">`` whose properties
carry the target facts.  How outcomes map onto JUnit elements:

========  ==========================================================
passed    ``<testcase>`` with nothing inside
xpassed   ``<testcase>``, the xfail reason in ``<system-out>``
failed    ``<failure>``
error     ``<error>``
timeout   ``<error type="timeout">``
crashed   ``<error type="crashed">`` (message names the signal)
skipped   ``<skipped>``
xfailed   ``<skipped type="xfailed">``
========  ==========================================================

A cell that never ran its cases (``infra-error``, ``not-run``) becomes one
``<testcase name="(cell)">`` with an ``<error>`` so CI sees it.

A case with a triage (:mod:`harness.triage`) carries it in the testcase's own
``<properties>``: ``leapfrog.triage`` is the class (``target-only``, ``slow``,
…) and ``leapfrog.triage.evidence`` the evidence as JSON (left out past
:data:`MAX_EVIDENCE` characters).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from junit_xml import TestCase, TestSuite, to_xml_report_string

from harness.model import Run, Status, Verdict

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
# Characters XML 1.0 cannot carry at all (even escaped): C0 controls but tab, LF,
# CR; lone surrogates; U+FFFE/U+FFFF.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
#: Characters of a case's triage evidence (JSON) kept as a property.
MAX_EVIDENCE = 8000


def xml_safe(text: str) -> str:
    """Make target output storable in XML: illegal characters become visible escapes."""
    if text.isascii() and text.isprintable():  # most names and messages: no regex needed
        return text
    return _XML_ILLEGAL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def junit_filename(target: str) -> str:
    return f"junit-{_SAFE_NAME.sub('_', target)}.xml"


class CaseProperties:
    """A junit-xml ``TestSuite`` whose ``<testcase>`` elements get ``<properties>`` (junit-xml has none per case).

    ``to_xml_report_string`` only calls ``build_xml_doc``: this wraps it.
    """

    def __init__(self, suite: Any, properties: list[dict[str, str]]) -> None:
        self.suite = suite
        self.properties = properties  # one table per test case, in order; {} for none

    def build_xml_doc(self, encoding: str | None = None) -> ET.Element:
        element: ET.Element = self.suite.build_xml_doc(encoding=encoding)
        if any(self.properties):
            for case, props in zip(element.findall("testcase"), self.properties, strict=True):
                if props:
                    holder = ET.Element("properties")
                    for name, value in props.items():
                        ET.SubElement(holder, "property", {"name": name, "value": value})
                    case.insert(0, holder)
        return element


def triage_properties(triage: dict[str, Any] | None) -> dict[str, str]:
    """The testcase properties of a triage: its class, and its evidence as JSON when short enough."""
    if not triage:
        return {}
    props = {"leapfrog.triage": xml_safe(str(triage.get("class", "")))}
    evidence = json.dumps(triage.get("evidence", {}), ensure_ascii=False, sort_keys=True)
    if len(evidence) <= MAX_EVIDENCE:
        props["leapfrog.triage.evidence"] = xml_safe(evidence)
    return props


def suites_for_target(run: Run, target: str) -> list[CaseProperties]:
    info = run.target(target)
    props: dict[str, str] = {"leapfrog.run_id": run.run_id, "leapfrog.target": target}
    if info and info.facts:
        f = info.facts
        props.update(
            {
                "arch": f.arch,
                "isa": f.isa,
                "cpu_model": f.cpu_model,
                "os": f.os_name,
                "kernel": f.kernel,
                "libc": f.libc,
                "python": f.python,
                "emulation": f.emulation,
            }
        )
        props.update({f"package.{k}": v for k, v in f.packages.items()})
        props = {k: xml_safe(v) for k, v in props.items()}
    out = []
    for cell in run.cells:
        if cell.target != target:
            continue
        classname = f"{target}.{cell.suite}"
        cases = []
        case_props: list[dict[str, str]] = []
        for c in cell.cases:
            message = xml_safe(c.message)
            tc = TestCase(
                name=xml_safe(c.name),
                classname=classname,
                elapsed_sec=c.duration,
                stdout=xml_safe(c.output) or None,
                status=c.status.value,
            )
            if c.status is Status.FAILED:
                tc.add_failure_info(message=message.splitlines()[0][:500] if message else "failed", output=message)
            elif c.status in (Status.ERROR, Status.TIMEOUT, Status.CRASHED):
                tc.add_error_info(
                    message=message.splitlines()[0][:500] if message else c.status.value,
                    output=message,
                    error_type=c.status.value,
                )
            elif c.status is Status.SKIPPED:
                tc.add_skipped_info(message=message[:500] or "skipped")
            elif c.status is Status.XFAILED:
                tc.add_skipped_info(message=f"xfailed: {message[:500]}")
            cases.append(tc)
            case_props.append(triage_properties(c.triage))
        if cell.verdict in (Verdict.INFRA_ERROR, Verdict.NOT_RUN) and not cell.cases:
            tc = TestCase(name="(cell)", classname=classname, elapsed_sec=cell.wall)
            tc.add_error_info(
                message=xml_safe(f"{cell.verdict.value}: {cell.message}"[:500]),
                output=xml_safe(cell.message),
                error_type=cell.verdict.value,
            )
            cases.append(tc)
            case_props.append({})
        suite = TestSuite(name=classname, test_cases=cases, properties=props, timestamp=run.started)
        out.append(CaseProperties(suite, case_props))
    return out


def write_junit(run: Run, out: Path) -> list[Path]:
    written = []
    for t in run.targets:
        path = out / junit_filename(t.name)
        suites = suites_for_target(run, t.name)
        path.write_text(to_xml_report_string(suites, prettyprint=False, encoding="utf-8"), encoding="utf-8")
        written.append(path)
    return written
