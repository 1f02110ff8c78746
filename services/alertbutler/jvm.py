"""Java servers from Maven Central: find Java, resolve jars once with Maven, cache them.

Apache Kafka (and any later JVM server) is run from its published jars rather than a
downloaded distribution: Maven resolves an artifact and every module it depends on into a
cache directory, once; afterwards the cache is used without any network. The cache lives in
``$XDG_CACHE_HOME/alertbutler/jvm`` (``~/.cache`` by default).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from alertbutler.errors import AlertbutlerError

__all__ = ["JvmError", "cache_root", "java_binary", "java_major", "resolve_classpath",
           "resolve_unpacked"]

_STAMP = ".resolved"


class JvmError(AlertbutlerError, RuntimeError):
    """Java or Maven is missing, too old, or the artifacts could not be resolved."""


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "alertbutler" / "jvm"


def java_binary(minimum: int = 17) -> str:
    """The ``java`` to run servers with (``$JAVA_HOME/bin/java`` first), at least ``minimum``."""
    home = os.environ.get("JAVA_HOME")
    candidate = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not candidate or not os.access(candidate, os.X_OK):
        raise JvmError(f"no Java found: install a Java {minimum}+ runtime (Debian: "
                       f"apt-get install openjdk-{minimum}-jre-headless) or set JAVA_HOME")
    major = java_major(candidate)
    if major < minimum:
        raise JvmError(f"{candidate} is Java {major}; Java {minimum} or newer is needed "
                       "(install a newer JDK or point JAVA_HOME at one)")
    return candidate


def java_major(java: str) -> int:
    """The major version ``java -version`` reports (8 for 1.8)."""
    out = subprocess.run([java, "-version"], capture_output=True, text=True,
                         timeout=60).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        raise JvmError(f"cannot read the version of {java}: {out.strip()[:200]}")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def resolve_classpath(name: str, artifacts: list[str]) -> str:
    """A classpath holding ``artifacts`` (``group:artifact:version``) and their dependencies.

    Resolved with Maven into ``cache_root()/name`` on first use; later calls use the cache
    and need neither Maven nor the network.
    """
    target = cache_root() / name
    libs = target / "libs"
    if (target / _STAMP).is_file() and any(libs.glob("*.jar")):
        return str(libs / "*")
    mvn = shutil.which("mvn")
    if not mvn:
        raise JvmError(f"{name} is not cached in {target} and Maven is missing: install "
                       "Maven (Debian: apt-get install maven) to resolve it once from "
                       "Maven Central")
    target.mkdir(parents=True, exist_ok=True)
    (target / "pom.xml").write_text(_pom(artifacts))
    staging = target / "libs.partial"
    shutil.rmtree(staging, ignore_errors=True)
    proc = subprocess.run(
        [mvn, "-q", "-B", "-f", str(target / "pom.xml"), "dependency:copy-dependencies",
         f"-DoutputDirectory={staging}", "-DincludeScope=runtime"],
        capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise JvmError(f"Maven could not resolve {', '.join(artifacts)}:\n{tail}")
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    (target / _STAMP).write_text("\n".join(artifacts) + "\n")
    return str(libs / "*")


def resolve_unpacked(name: str, artifact: str) -> Path:
    """A directory holding the unpacked archive ``group:artifact:version:type:classifier``
    (a server published as one zip, e.g. a Quarkus application).

    Unpacked with Maven into ``cache_root()/name`` on first use, like
    :func:`resolve_classpath`; later calls need neither Maven nor the network.
    """
    target = cache_root() / name
    unpacked = target / "unpacked"
    if (target / _STAMP).is_file() and unpacked.is_dir():
        return unpacked
    mvn = shutil.which("mvn")
    if not mvn:
        raise JvmError(f"{name} is not cached in {target} and Maven is missing: install "
                       "Maven (Debian: apt-get install maven) to fetch it once from "
                       "Maven Central")
    target.mkdir(parents=True, exist_ok=True)
    staging = target / "unpacked.partial"
    shutil.rmtree(staging, ignore_errors=True)
    proc = subprocess.run(
        [mvn, "-q", "-B", "dependency:unpack", f"-Dartifact={artifact}",
         f"-DoutputDirectory={staging}"],
        capture_output=True, text=True, timeout=1800, cwd=str(target))
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise JvmError(f"Maven could not fetch {artifact}:\n{tail}")
    shutil.rmtree(unpacked, ignore_errors=True)
    staging.rename(unpacked)
    (target / _STAMP).write_text(artifact + "\n")
    return unpacked


def _pom(artifacts: list[str]) -> str:
    deps = []
    for coordinate in artifacts:
        group, artifact, version = coordinate.split(":")
        deps.append(f"    <dependency><groupId>{group}</groupId><artifactId>{artifact}"
                    f"</artifactId><version>{version}</version></dependency>")
    body = "\n".join(deps)
    return ('<project xmlns="http://maven.apache.org/POM/4.0.0">\n'
            "  <modelVersion>4.0.0</modelVersion>\n"
            "  <groupId>alertbutler.local</groupId><artifactId>jvm-cache</artifactId>"
            "<version>1</version>\n"
            f"  <dependencies>\n{body}\n  </dependencies>\n</project>\n")
