"""Build the C core into the kafka_core extension modules.

Each ``src/kafka_core/_<name>.pyx`` is one extension; it compiles the
``csrc`` files it needs (CORE_SOURCES below) with C11 and -Wall -Wextra.
io_uring support is compiled in when liburing's header is found.

Environment:
  KC_EXTENSIONS=_batch,_log   build only these extensions (development)
  KC_DEBUG=1                  -O0 -g, assertions on
  KC_SANITIZE=1               AddressSanitizer + UndefinedBehaviorSanitizer
"""

import os
import shutil
import sysconfig
from pathlib import Path

from setuptools import Extension, setup

HERE = Path(__file__).parent.resolve()
CSRC = "csrc"

# Which csrc files each extension needs.
BASE = ["kc_common.c", "kc_crc32c.c"]
CORE_SOURCES = {
    "_crc32c": BASE,
    "_batch": BASE + ["kc_batch.c"],
    "_accum": BASE + ["kc_batch.c"],
    "_log": BASE + ["kc_batch.c", "kc_index.c", "kc_segment.c", "kc_log.c", "kc_log_open.c", "kc_compact.c",
             "kc_compact_txn.c", "kc_compact_recover.c"],
    "_transfer": BASE + ["kc_transfer.c"],
    "_client": BASE + ["kc_client.c"],
}


def have_liburing() -> bool:
    if os.environ.get("KC_NO_URING"):
        return False
    inc = sysconfig.get_config_var("INCLUDEDIR") or "/usr/include"
    return any(Path(d, "liburing.h").exists() for d in ("/usr/include", "/usr/local/include", inc))


def extensions() -> list[Extension]:
    wanted = {e for e in os.environ.get("KC_EXTENSIONS", "").split(",") if e}
    debug = bool(os.environ.get("KC_DEBUG"))
    sanitize = bool(os.environ.get("KC_SANITIZE"))
    cflags = ["-std=c11", "-Wall", "-Wextra", "-D_GNU_SOURCE", "-fno-strict-aliasing"]
    cflags += ["-O0", "-g"] if debug else ["-O2", "-DNDEBUG"]
    ldflags: list[str] = []
    if sanitize:
        cflags += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
        ldflags += ["-fsanitize=address,undefined"]
    uring = have_liburing()
    exts = []
    for pyx in sorted(Path(HERE, "src", "kafka_core").glob("_*.pyx")):
        name = pyx.stem
        if wanted and name not in wanted:
            continue
        csources = CORE_SOURCES.get(name, BASE)
        macros = [("KC_HAVE_LIBURING", "1")] if (uring and name == "_transfer") else []
        libs = ["uring"] if (uring and name == "_transfer") else []
        exts.append(
            Extension(
                f"kafka_core.{name}",
                sources=[str(pyx.relative_to(HERE))] + [f"{CSRC}/{c}" for c in csources],
                include_dirs=[CSRC],
                define_macros=macros,
                libraries=libs,
                extra_compile_args=cflags,
                extra_link_args=ldflags,
            )
        )
    return exts


def cythonize(exts: list[Extension]) -> list[Extension]:
    from Cython.Build import cythonize as _cythonize

    return _cythonize(
        exts,
        compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False,
                             "cdivision": True, "embedsignature": True},
        include_path=["src"],
        quiet=True,
    )


if shutil.which("gcc") is None and shutil.which("cc") is None:
    raise SystemExit("kafka-core needs a C compiler (gcc) and Python headers to build")

setup(ext_modules=cythonize(extensions()))
