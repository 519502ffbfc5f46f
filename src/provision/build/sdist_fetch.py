# mcpod's own script, run with `python3 -I` and the pinned pip wheel first on
# sys.path: find (or take) one project's sdist on the operator's index, the
# way pip would (its config, index URLs, find-links, certificates, proxies
# and credentials), download it with a bound, check its sha256, and copy its
# top-level pyproject.toml out, bounded. Nothing of the package is run or
# imported: the archive is read as data.
#
# argv: PIP_WHEEL DEST MAX_BYTES MAX_PYPROJECT PYTHON_MINOR find NAME SPEC [CUTOFF]
#       PIP_WHEEL DEST MAX_BYTES MAX_PYPROJECT PYTHON_MINOR take URL SHA256
# stdout: one JSON object.
import hashlib
import json
import os
import sys
import tarfile
import zipfile

wheel, dest, max_bytes, max_pyproject, minor, mode = sys.argv[1:7]
sys.path.insert(0, wheel)
max_bytes, max_pyproject = int(max_bytes), int(max_pyproject)


def answer(**kw):
    print(json.dumps(kw))
    sys.exit(0)


from pip._internal.commands import create_command  # noqa: E402
from pip._internal.models.target_python import TargetPython  # noqa: E402
from pip._internal.utils.misc import redact_auth_from_url  # noqa: E402
from pip._vendor.packaging.specifiers import SpecifierSet  # noqa: E402

args = ["--no-binary=:all:", "--no-deps", "--quiet"]
if mode == "find" and len(sys.argv) > 9 and sys.argv[9]:
    args.append("--uploaded-prior-to=" + sys.argv[9])
cmd = create_command("download")
options, _ = cmd.parse_args(args + ["unused"])
with cmd.main_context():
    session = cmd.get_default_session(options)

if mode == "find":
    name, spec = sys.argv[7], sys.argv[8]
    target = TargetPython(py_version_info=tuple(int(p) for p in minor.split(".")))
    finder = cmd._build_package_finder(
        options=options, session=session, target_python=target
    )
    best = finder.find_best_candidate(name, SpecifierSet(spec)).best_candidate
    if best is None or best.link.is_wheel:
        answer(none=True)
    link = best.link
    url, want = link.url_without_fragment, (link._hashes or {}).get("sha256")
    version = str(best.version)
    filename = link.filename
else:
    url, want = sys.argv[7], sys.argv[8]
    version, filename = None, url.rsplit("/", 1)[-1]

if not (filename.endswith(".tar.gz") or filename.endswith(".zip")):
    answer(unsupported=filename)
if "/" in filename or filename.startswith("."):
    answer(unsupported=filename)

path = os.path.join(dest, filename)
digest, size = hashlib.sha256(), 0
resp = session.get(url, stream=True, headers={"Accept-Encoding": "identity"})
resp.raise_for_status()
with open(path, "wb") as out:
    for chunk in resp.iter_content(1 << 16):
        size += len(chunk)
        if size > max_bytes:
            answer(too_big=size, url=url)
        digest.update(chunk)
        out.write(chunk)
got = digest.hexdigest()
if want and got != want:
    answer(mismatch=got, want=want, url=url)

# The top-level pyproject.toml (`NAME-VERSION/pyproject.toml`), as data.
pyproject = None
try:
    if filename.endswith(".zip"):
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                parts = info.filename.split("/")
                if len(parts) == 2 and parts[1] == "pyproject.toml":
                    if info.file_size > max_pyproject:
                        answer(pyproject_too_big=info.file_size, file=filename)
                    pyproject = z.read(info)
                    break
    else:
        with tarfile.open(path, "r:gz") as t:
            for info in t:
                parts = info.name.split("/")
                if len(parts) == 2 and parts[1] == "pyproject.toml" and info.isfile():
                    if info.size > max_pyproject:
                        answer(pyproject_too_big=info.size, file=filename)
                    pyproject = t.extractfile(info).read(max_pyproject + 1)
                    break
except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as e:
    answer(unreadable=str(e)[:300], file=filename)
if pyproject is not None:
    with open(os.path.join(dest, "pyproject.toml"), "wb") as out:
        out.write(pyproject)

answer(url=redact_auth_from_url(url), sha256=got, file=filename, version=version, pyproject=pyproject is not None)
