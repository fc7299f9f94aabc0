"""Generate kafka_protocol/messages/_generated.py from Apache Kafka's message schemas.

Usage (from the repository root):

    python python/kafka_protocol/generator/generate.py [--schemas DIR] [--out DIR] [--check]
    PYTHONPATH=python python -m kafka_protocol.generator [...]

``--schemas`` (or $KAFKA_PROTOCOL_SCHEMAS) is the directory holding ``messages-4.3/`` and
``messages/``; it defaults to ``../shared/kafka-protocol`` next to the repository. Files in
``messages-4.3`` win over same-named files in ``messages``, and an older file is dropped when
a 4.3 file already claims its (apiKey, type) (ListClientMetricsResources became
ListConfigResources). The schema files are inputs only; the generated module is committed.

How the code is shaped: for every struct and every version, the wire layout (which fields,
nullable or not, compact or not, tagged or not, and the layouts of nested structs) forms a
signature. Versions with the same signature share one decode and one encode function, so the
output has no version tests at run time: each function is straight-line code, with one
precompiled ``struct.Struct`` per run of fixed-size fields. Messages dispatch on
``_DEC[version]`` / ``_ENC[version]``.

This script is standalone (no kafka_protocol import) so it runs on a fresh checkout.
"""

from __future__ import annotations

import argparse
import json
import keyword
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_SCHEMAS = REPO_ROOT.parent / "shared" / "kafka-protocol"
DEFAULT_OUT = REPO_ROOT / "python" / "kafka_protocol" / "messages"
SCHEMA_DIRS = ("messages-4.3", "messages")  # earlier wins
OUT_FILE = "_generated.py"
OPEN_HI = 0x7FFF

FIXED: dict[str, tuple[str, int]] = {
    "bool": ("?", 1),
    "int8": ("b", 1),
    "int16": ("h", 2),
    "uint16": ("H", 2),
    "int32": ("i", 4),
    "uint32": ("I", 4),
    "int64": ("q", 8),
    "float64": ("d", 8),
    "uuid": ("16s", 16),
}
CODE_NAME = {"?": "o", "b": "b", "h": "h", "H": "H", "i": "i", "I": "I", "q": "q", "d": "d", "16s": "U"}
VARLEN = {"string", "bytes", "records"}

# Top-level array fields whose elements may be ``PreEncoded`` (``Message.pre_encode``): bytes
# encoded earlier for that exact element layout, spliced into the array as they are.  Only where
# a caller caches encoded elements (the broker's Metadata topic entries, metadata_cache.py): the
# class test it costs per element is not paid by the arrays of every other message.
PRE_ENCODED = {("MetadataResponse", "topics")}


# ----------------------------------------------------------------------------- schema model


@dataclass(frozen=True)
class Versions:
    lo: int
    hi: int

    @staticmethod
    def parse(text: str | None, default: Versions | None = None) -> Versions:
        if text is None:
            return default if default is not None else Versions(1, 0)
        text = text.strip()
        if text == "none":
            return Versions(1, 0)
        if text.endswith("+"):
            return Versions(int(text[:-1]), OPEN_HI)
        if "-" in text:
            lo, hi = text.split("-")
            return Versions(int(lo), int(hi))
        return Versions(int(text), int(text))

    def __contains__(self, v: int) -> bool:
        return self.lo <= v <= self.hi

    def intersect(self, other: Versions) -> Versions:
        return Versions(max(self.lo, other.lo), min(self.hi, other.hi))

    @property
    def empty(self) -> bool:
        return self.lo > self.hi

    def py(self) -> str:
        return f"_VR({self.lo}, {self.hi})"


NONE_VERSIONS = Versions(1, 0)


@dataclass
class FieldDef:
    name: str
    attr: str
    type: str
    versions: Versions
    nullable: Versions
    tagged: Versions
    tag: int | None
    default_raw: Any
    ignorable: bool
    flex_override: Versions | None  # field-level flexibleVersions
    struct: StructDef | None = None  # value/element struct
    pre_encoded: bool = False  # elements may be PreEncoded (PRE_ENCODED)

    @property
    def is_array(self) -> bool:
        return self.type.startswith("[]")

    @property
    def elem(self) -> str:
        return self.type[2:] if self.is_array else self.type

    @property
    def is_struct(self) -> bool:
        return self.struct is not None and not self.is_array


@dataclass
class StructDef:
    name: str  # schema name, e.g. "TopicProduceData"
    pyname: str  # module-level name, e.g. "ProduceRequest_TopicProduceData"
    qualname: str  # e.g. "ProduceRequest.TopicProduceData"
    fields: list[FieldDef]
    message: MessageDef | None = None
    children: list[StructDef] = field(default_factory=list)
    # layout signature -> layout index; version -> layout index
    layouts: dict[tuple[Any, ...], int] = field(default_factory=dict)
    by_version: dict[int, int] = field(default_factory=dict)


@dataclass
class MessageDef:
    name: str
    kind: str  # request / response / header / data
    api_key: int | None
    valid: Versions
    flexible: Versions
    root: StructDef
    structs: list[StructDef]  # nested structs in definition order (excluding root)
    source: str


def strip_comments(text: str) -> str:
    """Drop // comments outside strings (the schema files carry a licence header and notes)."""
    out = []
    for line in text.splitlines():
        in_str = False
        cut = len(line)
        i = 0
        while i < len(line):
            c = line[i]
            if c == "\\" and in_str:
                i += 2
                continue
            if c == '"':
                in_str = not in_str
            elif not in_str and line.startswith("//", i):
                cut = i
                break
            i += 1
        out.append(line[:cut])
    return "\n".join(out)


def snake(name: str) -> str:
    s = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()
    if keyword.iskeyword(s) or s in {"encode", "decode", "encode_parts", "unknown_tagged_fields"}:
        s += "_"
    return s


def load_schemas(schemas: Path) -> list[tuple[str, dict[str, Any]]]:
    chosen: dict[str, tuple[str, dict[str, Any]]] = {}
    claimed: set[tuple[int, str]] = set()
    for sub in SCHEMA_DIRS:
        d = schemas / sub
        if not d.is_dir():
            continue
        for path in sorted(d.glob("*.json")):
            if path.name in chosen:
                continue
            spec = json.loads(strip_comments(path.read_text(encoding="utf-8")))
            key = spec.get("apiKey")
            if key is not None and (key, spec["type"]) in claimed:
                continue  # superseded by a newer schema under another name
            if key is not None:
                claimed.add((key, spec["type"]))
            chosen[path.name] = (f"{sub}/{path.name}", spec)
    if not chosen:
        raise SystemExit(f"no schema files under {schemas} ({', '.join(SCHEMA_DIRS)})")
    return [chosen[k] for k in sorted(chosen)]


def build_message(source: str, spec: dict[str, Any]) -> MessageDef:
    name = spec["name"]
    kind = spec["type"]
    pyname = name
    if kind == "header":
        pyname = name + "Data"  # RequestHeader/ResponseHeader name the parsed headers in __init__
    valid = Versions.parse(spec["validVersions"])
    flexible = Versions.parse(spec.get("flexibleVersions", "none"))
    common = {cs["name"]: cs for cs in spec.get("commonStructs", [])}
    structs: dict[str, StructDef] = {}
    order: list[StructDef] = []

    def make_struct(sname: str, fields_json: list[dict[str, Any]], parent: StructDef | None) -> StructDef:
        if sname in structs:
            return structs[sname]
        sd = StructDef(sname, f"{pyname}_{sname}", f"{pyname}.{sname}", [])
        structs[sname] = sd
        sd.fields = [make_field(f, sd) for f in fields_json]
        order.append(sd)
        return sd

    def make_field(f: dict[str, Any], owner: StructDef) -> FieldDef:
        versions = Versions.parse(f["versions"])
        fd = FieldDef(
            name=f["name"],
            attr=snake(f["name"]),
            type=f["type"],
            versions=versions,
            nullable=Versions.parse(f.get("nullableVersions")),
            tagged=Versions.parse(f.get("taggedVersions")),
            tag=int(f["tag"]) if f.get("tag") is not None else None,   # a few schemas write "0"
            default_raw=f.get("default"),
            ignorable=bool(f.get("ignorable", False)),
            flex_override=Versions.parse(f["flexibleVersions"]) if "flexibleVersions" in f else None,
        )
        elem = fd.elem
        if elem not in FIXED and elem not in VARLEN:
            if "fields" in f:
                fd.struct = make_struct(elem, f["fields"], owner)
            elif elem in common:
                fd.struct = make_struct(elem, common[elem]["fields"], owner)
            elif elem in structs:
                fd.struct = structs[elem]
            else:
                raise SystemExit(f"{source}: unknown type {fd.type} for field {fd.name}")
            if fd.struct not in owner.children:
                owner.children.append(fd.struct)
        return fd

    root = StructDef(name, pyname, pyname, [])
    root.fields = [make_field(f, root) for f in spec["fields"]]
    for fd in root.fields:
        fd.pre_encoded = (name, fd.attr) in PRE_ENCODED and fd.is_array and fd.struct is not None
    # commonStructs that no field references still get classes (harmless, keeps names stable)
    for cs_name, cs in common.items():
        if cs_name not in structs:
            make_struct(cs_name, cs["fields"], None)
    msg = MessageDef(pyname, kind, spec.get("apiKey"), valid, flexible, root, order, source)
    root.message = msg
    for sd in order:
        sd.message = msg
    return msg


# ----------------------------------------------------------------------------- layouts


@dataclass(frozen=True)
class FieldLayout:
    fd: FieldDef
    nullable: bool
    compact: bool
    tagged: bool
    child: int | None  # layout index of the value/element struct


def field_layouts(sd: StructDef, v: int, flexible: bool) -> list[FieldLayout]:
    res = []
    for fd in sd.fields:
        if v not in fd.versions:
            continue
        child = layout_for(fd.struct, v, flexible) if fd.struct is not None else None
        compact = flexible if fd.flex_override is None else (v in fd.flex_override)
        res.append(FieldLayout(fd, v in fd.nullable, compact, flexible and v in fd.tagged, child))
    return res


def layout_sig(sd: StructDef, v: int, flexible: bool) -> tuple[Any, ...]:
    return (flexible,) + tuple(
        (fl.fd.name, fl.nullable, fl.compact, fl.tagged, fl.child) for fl in field_layouts(sd, v, flexible)
    )


def layout_for(sd: StructDef, v: int, flexible: bool) -> int:
    sig = layout_sig(sd, v, flexible)
    idx = sd.layouts.get(sig)
    if idx is None:
        idx = len(sd.layouts)
        sd.layouts[sig] = idx
        sd.by_version[v] = idx
    sd.by_version.setdefault(v, idx)
    return idx


def layout_versions(sd: StructDef) -> dict[int, tuple[int, bool]]:
    """layout index -> (a representative version, flexible)."""
    rep: dict[int, tuple[int, bool]] = {}
    for sig, idx in sd.layouts.items():
        for v, i in sorted(sd.by_version.items()):
            if i == idx:
                rep[idx] = (v, sig[0])
                break
    return rep


# ----------------------------------------------------------------------------- defaults


def py_default(fd: FieldDef) -> tuple[str, bool]:
    """(expression, mutable). Mutable defaults are created per instance."""
    raw = fd.default_raw
    t = fd.type
    nullable_any = not fd.nullable.empty
    if fd.is_array:
        if raw == "null":
            return "None", False
        return "[]", True
    if fd.struct is not None:
        if raw == "null":
            return "None", False
        return f"{fd.struct.pyname}()", True
    if t == "string":
        if raw == "null" and nullable_any:
            return "None", False
        return repr("" if raw is None else str(raw)), False
    if t in ("bytes", "records"):
        if raw == "null" or (t == "records" and nullable_any):
            return "None", False
        return "b''", False
    if t == "bool":
        if raw is None:
            return "False", False
        if isinstance(raw, bool):
            return repr(raw), False
        return repr(str(raw).strip().lower() == "true"), False
    if t == "float64":
        return repr(float(raw)) if raw is not None else "0.0", False
    if t == "uuid":
        return "_ZERO_UUID", False
    if t in FIXED:
        if raw is None:
            return "0", False
        if isinstance(raw, int):
            return str(raw), False
        s = str(raw).strip()
        neg = s.startswith("-")
        body = s[1:] if neg else s
        val = int(body, 16) if body.lower().startswith("0x") else int(body)
        return str(-val if neg else val), False
    raise SystemExit(f"no default for type {t}")


def nondefault_check(fd: FieldDef, expr: str) -> str:
    """Python condition true when ``expr`` differs from the field's default (Kafka's rule for
    writing tagged fields and for refusing values a version cannot carry)."""
    dexpr, mutable = py_default(fd)
    if dexpr == "None":
        return f"{expr} is not None"
    if fd.is_array:
        return f"({expr} is None or len({expr}) != 0)"
    if fd.struct is not None:
        return f"({expr} is None or {expr}._nondefault())"
    if fd.type in ("bytes",):
        return f"({expr} is None or len({expr}) != 0)"
    return f"{expr} != {dexpr}"


# ----------------------------------------------------------------------------- code emission


class Emitter:
    def __init__(self) -> None:
        self.structs: dict[str, str] = {}  # format -> name

    def struct_name(self, codes: list[str]) -> str:
        fmt = ">" + "".join(codes)
        name = self.structs.get(fmt)
        if name is None:
            name = "_S_" + "".join(CODE_NAME[c] for c in codes)
            self.structs[fmt] = name
        return name


def fn_name(sd: StructDef, prefix: str, idx: int) -> str:
    return f"_{prefix}_{sd.pyname}_{idx}"


def dec_varlen(fl: FieldLayout, target: str, ind: str, what: str, em: Emitter) -> list[str]:
    """Decode a string/bytes/records value at pos into ``target``."""
    t = fl.fd.elem
    lines = []
    if fl.compact:
        lines += [
            f"{ind}n = buf[pos]",
            f"{ind}if n < 128:",
            f"{ind}    pos += 1",
            f"{ind}else:",
            f"{ind}    n, pos = _uvarint(buf, pos)",
            f"{ind}n -= 1",
        ]
    elif t == "string":
        lines += [f"{ind}n = _S_h.unpack_from(buf, pos)[0]", f"{ind}pos += 2"]
    else:
        lines += [f"{ind}n = _S_i.unpack_from(buf, pos)[0]", f"{ind}pos += 4"]
    lines += dec_null(fl, target, ind, what)
    lines += [
        f"{ind}    end = pos + n",
        f"{ind}    if end > blen:",
        f"{ind}        raise _truncated({what!r}, pos, n, blen)",
    ]
    if t == "string":
        lines.append(f"{ind}    {target} = str(buf[pos:end], 'utf-8')")
    else:
        lines.append(f"{ind}    {target} = buf[pos:end]")
    lines.append(f"{ind}    pos = end")
    return lines


def dec_null(fl: FieldLayout, target: str, ind: str, what: str) -> list[str]:
    """After a length or count n: null (n < 0) for nullable fields, else an error; ends in the
    ``else:`` under which the caller decodes the value."""
    null = f"{ind}    {target} = None" if fl.nullable else f"{ind}    raise _null_error({what!r}, pos)"
    return [f"{ind}if n < 0:", null, f"{ind}else:"]


def dec_count(fl: FieldLayout, ind: str) -> list[str]:
    if fl.compact:
        return [
            f"{ind}n = buf[pos]",
            f"{ind}if n < 128:",
            f"{ind}    pos += 1",
            f"{ind}else:",
            f"{ind}    n, pos = _uvarint(buf, pos)",
            f"{ind}n -= 1",
        ]
    return [f"{ind}n = _S_i.unpack_from(buf, pos)[0]", f"{ind}pos += 4"]


def dec_value(fl: FieldLayout, target: str, ind: str, what: str, em: Emitter) -> list[str]:
    """Decode one field value (any type) at pos into ``target``."""
    fd = fl.fd
    t = fd.elem
    lines: list[str] = []
    if fd.is_array:
        lines += dec_count(fl, ind)
        lines += dec_null(fl, target, ind, what)
        lines += [
            f"{ind}    if n > blen - pos:",
            f"{ind}        raise _bad_count({what!r}, pos, n, blen)",
        ]
        i2 = ind + "    "
        if t in FIXED and t != "uuid":
            code, size = FIXED[t]
            lines += [f"{i2}{target} = _unpack_array({code!r}, {size}, buf, pos, n)", f"{i2}pos += {size} * n"]
        elif t == "uuid":
            lines += [
                f"{i2}{target} = []",
                f"{i2}for _ in range(n):",
                f"{i2}    {target}.append(_decode_uuid(bytes(buf[pos:pos + 16])))",
                f"{i2}    pos += 16",
                f"{i2}if pos > blen:",
                f"{i2}    raise _truncated({what!r}, pos, 0, blen)",
            ]
        elif t == "string":
            el = FieldLayout(fd, False, fl.compact, False, None)
            elem_fd = FieldDef(fd.name, fd.attr, "string", fd.versions, NONE_VERSIONS, NONE_VERSIONS,
                               None, None, False, None)
            el = FieldLayout(elem_fd, False, fl.compact, False, None)
            lines += [f"{i2}{target} = []", f"{i2}for _ in range(n):"]
            lines += dec_varlen(el, "e", i2 + "    ", what + "[]", em)
            lines.append(f"{i2}    {target}.append(e)")
        else:
            child = fn_name(fd.struct, "d", fl.child)  # type: ignore[arg-type]
            lines += [
                f"{i2}{target} = []",
                f"{i2}ap = {target}.append",
                f"{i2}for _ in range(n):",
                f"{i2}    e, pos = {child}(buf, pos, blen)",
                f"{i2}    ap(e)",
            ]
        return lines
    if fd.struct is not None:
        child = fn_name(fd.struct, "d", fl.child)  # type: ignore[arg-type]
        if fl.nullable:
            lines += [
                f"{ind}m = _S_b.unpack_from(buf, pos)[0]",
                f"{ind}pos += 1",
                f"{ind}if m < 0:",
                f"{ind}    {target} = None",
                f"{ind}else:",
                f"{ind}    {target}, pos = {child}(buf, pos, blen)",
            ]
        else:
            lines.append(f"{ind}{target}, pos = {child}(buf, pos, blen)")
        return lines
    if t in VARLEN:
        return dec_varlen(fl, target, ind, what, em)
    code, size = FIXED[t]
    sname = em.struct_name([code])
    lines += [f"{ind}{target} = {sname}.unpack_from(buf, pos)[0]", f"{ind}pos += {size}"]
    if t == "uuid":
        lines.append(f"{ind}{target} = _decode_uuid({target})")
    return lines


def enc_len(compact: bool, nullable_marker: str, n_expr: str, width: str, w: str, ind: str) -> list[str]:
    if compact:
        return [f"{ind}n = {n_expr} + 1", f"{ind}{w}(_UV1[n] if n < 128 else _uvb(n))"]
    return [f"{ind}{w}({width}.pack({n_expr}))"]


def enc_value(fl: FieldLayout, expr: str, ind: str, w: str, out: str, em: Emitter) -> list[str]:
    """Encode value ``expr`` (a simple name) of one field by calling ``w`` (out.append)."""
    fd = fl.fd
    t = fd.elem
    lines: list[str] = []
    null_bytes = "b'\\x00'" if fl.compact else ("b'\\xff\\xff'" if t == "string" and not fd.is_array
                                               else "b'\\xff\\xff\\xff\\xff'")
    if fd.is_array:
        body_ind = ind
        if fl.nullable:
            lines += [f"{ind}if {expr} is None:", f"{ind}    {w}({null_bytes})", f"{ind}else:"]
            body_ind = ind + "    "
        lines += enc_len(fl.compact, null_bytes, f"len({expr})", "_S_i", w, body_ind)
        if t in FIXED and t != "uuid":
            code, _ = FIXED[t]
            lines += [f"{body_ind}if {expr}:", f"{body_ind}    {w}(_pack_array({code!r}, {expr}))"]
        elif t == "uuid":
            lines += [f"{body_ind}for e in {expr}:", f"{body_ind}    {w}(e.bytes)"]
        elif t == "string":
            lines.append(f"{body_ind}for e in {expr}:")
            lines.append(f"{body_ind}    b = e.encode()")
            if fl.compact:
                lines += [f"{body_ind}    n = len(b) + 1", f"{body_ind}    {w}(_UV1[n] if n < 128 else _uvb(n))"]
            else:
                lines.append(f"{body_ind}    {w}(_S_h.pack(len(b)))")
            lines.append(f"{body_ind}    {w}(b)")
        else:
            child = fn_name(fd.struct, "e", fl.child)  # type: ignore[arg-type]
            lines.append(f"{body_ind}for e in {expr}:")
            if fd.pre_encoded:   # bytes of this very layout (another version's would corrupt the frame)
                lines += [f"{body_ind}    if e.__class__ is _PreEncoded:",
                          f"{body_ind}        if e.layout is not {child}:",
                          f"{body_ind}            raise _wrong_layout(e, {child!r})",
                          f"{body_ind}        {w}(e.data)",
                          f"{body_ind}        continue"]
            lines.append(f"{body_ind}    {child}(e, {out})")
        return lines
    if fd.struct is not None:
        child = fn_name(fd.struct, "e", fl.child)  # type: ignore[arg-type]
        if fl.nullable:
            lines += [
                f"{ind}if {expr} is None:",
                f"{ind}    {w}(b'\\xff')",
                f"{ind}else:",
                f"{ind}    {w}(b'\\x01')",
                f"{ind}    {child}({expr}, {out})",
            ]
        else:
            lines.append(f"{ind}{child}({expr}, {out})")
        return lines
    if t in VARLEN:
        body_ind = ind
        if fl.nullable:
            lines += [f"{ind}if {expr} is None:", f"{ind}    {w}({null_bytes})", f"{ind}else:"]
            body_ind = ind + "    "
        if t == "string":
            lines.append(f"{body_ind}b = {expr}.encode()")
            val = "b"
            width = "_S_h"
        else:
            val = expr
            width = "_S_i"
        lines += enc_len(fl.compact, null_bytes, f"len({val})", width, w, body_ind)
        lines.append(f"{body_ind}{w}({val})")
        return lines
    code, _ = FIXED[t]
    sname = em.struct_name([code])
    val = f"{expr}.bytes" if t == "uuid" else expr
    lines.append(f"{ind}{w}({sname}.pack({val}))")
    return lines


def is_fixed(fl: FieldLayout) -> bool:
    return not fl.fd.is_array and fl.fd.struct is None and fl.fd.elem in FIXED


def runs(fls: list[FieldLayout]) -> list[list[FieldLayout] | FieldLayout]:
    """Group consecutive fixed-size fields so each run is one struct (un)pack."""
    out: list[list[FieldLayout] | FieldLayout] = []
    cur: list[FieldLayout] = []
    for fl in fls:
        if is_fixed(fl):
            cur.append(fl)
        else:
            if cur:
                out.append(cur)
                cur = []
            out.append(fl)
    if cur:
        out.append(cur)
    return out


def _split_layouts(sd: StructDef, v: int, flexible: bool) -> tuple[list[FieldLayout], list[FieldLayout], set[str]]:
    """(regular fields in order, tagged fields by tag, names present) of one struct version."""
    fls = field_layouts(sd, v, flexible)
    regular = [fl for fl in fls if not fl.tagged]
    tagged = sorted((fl for fl in fls if fl.tagged), key=lambda fl: fl.fd.tag or 0)
    return regular, tagged, {fl.fd.name for fl in fls}


def gen_decoder(sd: StructDef, idx: int, v: int, flexible: bool, em: Emitter) -> list[str]:
    regular, tagged, present = _split_layouts(sd, v, flexible)
    lines = [f"def {fn_name(sd, 'd', idx)}(buf, pos, blen):"]
    ind = "    "
    for item in runs(regular):
        if isinstance(item, list):
            codes = [FIXED[fl.fd.elem][0] for fl in item]
            size = sum(FIXED[fl.fd.elem][1] for fl in item)
            sname = em.struct_name(codes)
            targets = ", ".join(f"f_{fl.fd.attr}" for fl in item)
            if len(item) == 1:
                lines.append(f"{ind}{targets} = {sname}.unpack_from(buf, pos)[0]")
            else:
                lines.append(f"{ind}{targets} = {sname}.unpack_from(buf, pos)")
            lines.append(f"{ind}pos += {size}")
            for fl in item:
                if fl.fd.elem == "uuid":
                    lines.append(f"{ind}f_{fl.fd.attr} = _decode_uuid(f_{fl.fd.attr})")
        else:
            lines += dec_value(item, f"f_{item.fd.attr}", ind, f"{sd.qualname}.{item.fd.attr}", em)
    # absent and tagged fields start at their defaults
    for fd in sd.fields:
        if fd.name not in present or any(fl.fd is fd for fl in tagged):
            dexpr, _ = py_default(fd)
            lines.append(f"{ind}f_{fd.attr} = {dexpr}")
    if flexible:
        if not tagged:
            lines += [
                f"{ind}if buf[pos] == 0:",
                f"{ind}    pos += 1",
                f"{ind}    unk = None",
                f"{ind}else:",
                f"{ind}    unk, pos = _read_unknown_tags(buf, pos, blen, {sd.qualname!r})",
            ]
        else:
            lines += [
                f"{ind}unk = None",
                f"{ind}if buf[pos] == 0:",
                f"{ind}    pos += 1",
                f"{ind}else:",
                f"{ind}    nt, pos = _uvarint(buf, pos)",
                f"{ind}    if nt > blen - pos:",
                f"{ind}        raise _bad_count({sd.qualname + ' tagged fields'!r}, pos, nt, blen)",
                f"{ind}    for _ in range(nt):",
                f"{ind}        tag, pos = _uvarint(buf, pos)",
                f"{ind}        size, pos = _uvarint(buf, pos)",
                f"{ind}        tend = pos + size",
                f"{ind}        if tend > blen:",
                f"{ind}            raise _truncated({sd.qualname + ' tagged field'!r}, pos, size, blen)",
            ]
            i3 = ind + "            "
            kw = "if"
            for fl in tagged:
                lines.append(f"{ind}        {kw} tag == {fl.fd.tag}:")
                lines += dec_value(fl, f"f_{fl.fd.attr}", i3, f"{sd.qualname}.{fl.fd.attr}", em)
                kw = "elif"
            lines += [
                f"{ind}        else:",
                f"{ind}            if unk is None:",
                f"{ind}                unk = []",
                f"{ind}            unk.append((tag, bytes(buf[pos:tend])))",
                f"{ind}        pos = tend",
                f"{ind}    if unk is not None and len(unk) > 1:",
                f"{ind}        unk.sort(key=_tag_key)",
            ]
        args = ", ".join([f"f_{fd.attr}" for fd in sd.fields] + ["unk"])
    else:
        args = ", ".join(f"f_{fd.attr}" for fd in sd.fields)
    lines.append(f"{ind}return {sd.pyname}({args}), pos")
    return lines


def gen_encoder(sd: StructDef, idx: int, v: int, flexible: bool, em: Emitter) -> list[str]:
    regular, tagged, present = _split_layouts(sd, v, flexible)
    lines = [f"def {fn_name(sd, 'e', idx)}(o, out):"]
    ind = "    "
    # Values a version cannot carry: ignorable ones are dropped, others refused (like Kafka).
    for fd in sd.fields:
        if fd.name in present or fd.ignorable:
            continue
        lines += [
            f"{ind}x = o.{fd.attr}",
            f"{ind}if {nondefault_check(fd, 'x')}:",
            f"{ind}    raise _unsupported({sd.qualname!r}, {fd.attr!r})",
        ]
    lines.append(f"{ind}w = out.append")
    for item in runs(regular):
        if isinstance(item, list):
            codes = [FIXED[fl.fd.elem][0] for fl in item]
            sname = em.struct_name(codes)
            vals = ", ".join(f"o.{fl.fd.attr}.bytes" if fl.fd.elem == "uuid" else f"o.{fl.fd.attr}"
                             for fl in item)
            lines.append(f"{ind}w({sname}.pack({vals}))")
        else:
            lines.append(f"{ind}x = o.{item.fd.attr}")
            lines += enc_value(item, "x", ind, "w", "out", em)
    if flexible:
        if not tagged:
            lines += [
                f"{ind}u = o.unknown_tagged_fields",
                f"{ind}if u:",
                f"{ind}    _write_tags(out, sorted(u, key=_tag_key))",
                f"{ind}else:",
                f"{ind}    w(b'\\x00')",
            ]
        else:
            lines.append(f"{ind}tf = []")
            for fl in tagged:
                lines += [
                    f"{ind}x = o.{fl.fd.attr}",
                    f"{ind}if {nondefault_check(fl.fd, 'x')}:",
                    f"{ind}    sub = []",
                    f"{ind}    ws = sub.append",
                ]
                lines += enc_value(fl, "x", ind + "    ", "ws", "sub", em)
                lines.append(f"{ind}    tf.append(({fl.fd.tag}, b''.join(sub)))")
            lines += [
                f"{ind}u = o.unknown_tagged_fields",
                f"{ind}if u:",
                f"{ind}    tf = _merge_tags(tf, u)",
                f"{ind}if tf:",
                f"{ind}    _write_tags(out, tf)",
                f"{ind}else:",
                f"{ind}    w(b'\\x00')",
            ]
    return lines


def gen_class(sd: StructDef, top: MessageDef | None) -> list[str]:
    base = "_Message" if top is not None else "_Struct"
    slots = [fd.attr for fd in sd.fields] + ["unknown_tagged_fields"]
    lines = [f"class {sd.pyname}({base}):"]
    if top is not None:
        doc = f"{top.kind} {top.name}" + (f" (api key {top.api_key})" if top.api_key is not None else "")
        lines.append(f'    """Kafka {doc}; versions {top.valid.lo}-{top.valid.hi}."""')
    else:
        lines.append(f'    """{sd.qualname} (nested struct)."""')
    lines.append("")
    lines.append(f"    __slots__ = ({', '.join(repr(s) for s in slots)},)")
    if top is not None:
        lines.append(f"    API_KEY = {top.api_key if top.api_key is not None else -1}")
        lines.append(f"    MIN_VERSION = {top.valid.lo}")
        lines.append(f"    MAX_VERSION = {top.valid.hi}")
        flex_min = None
        if not top.flexible.empty:
            flex_min = max(top.flexible.lo, 0)
        lines.append(f"    FLEXIBLE_MIN = {flex_min}")
        lines.append(f"    KIND = {top.kind!r}")
    for child in sd.children:
        lines.append(f"    {child.name} = {child.pyname}")
    if top is not None:
        for child in top.structs:
            if child not in sd.children:
                lines.append(f"    {child.name} = {child.pyname}")
    params = []
    body = []
    for fd in sd.fields:
        dexpr, mutable = py_default(fd)
        if mutable:
            params.append(f"{fd.attr}=_UNSET")
            body.append(f"        self.{fd.attr} = {dexpr} if {fd.attr} is _UNSET else {fd.attr}")
        else:
            params.append(f"{fd.attr}={dexpr}")
            body.append(f"        self.{fd.attr} = {fd.attr}")
    params.append("unknown_tagged_fields=None")
    body.append("        self.unknown_tagged_fields = unknown_tagged_fields")
    lines.append("")
    lines.append(f"    def __init__(self, {', '.join(params)}):")
    lines += body
    # Straight-line "differs from a fresh default instance" (tagged struct fields are written only then).
    checks = [nondefault_check(fd, f"self.{fd.attr}") for fd in sd.fields] + ["bool(self.unknown_tagged_fields)"]
    lines.append("")
    lines.append("    def _nondefault(self):")
    lines.append(f"        return ({(chr(10) + '                or ').join(checks)})")
    lines.append("")
    lines.append("")
    return lines


def field_spec(fd: FieldDef) -> str:
    dexpr, mutable = py_default(fd)
    # struct-typed fields with a non-null default: the default is a fresh instance of ``struct``
    default = "[]" if fd.is_array and mutable else (fd.struct.pyname if mutable and fd.struct else dexpr)
    struct = fd.struct.pyname if fd.struct is not None else "None"
    return (
        f"_FS({fd.attr!r}, {fd.name!r}, {fd.type!r}, {fd.versions.py()}, {fd.nullable.py()}, "
        f"{fd.tagged.py()}, {fd.tag!r}, {default}, {fd.ignorable!r}, {struct}, "
        f"{fd.flex_override is not None!r})"
    )


HEADER = '''\
# GENERATED by python/kafka_protocol/generator/generate.py from Apache Kafka's message schemas
# ({sources}). Do not edit: change the generator and regenerate.
# flake8: noqa
# fmt: off
"""Kafka wire codecs for every schema: one class per message, nested classes per struct."""

from struct import Struct as _StructFmt

from .._runtime import (
    UV1 as _UV1,
    ZERO_UUID as _ZERO_UUID,
    FieldSpec as _FS,
    Message as _Message,
    PreEncoded as _PreEncoded,
    Struct as _Struct,
    VersionRange as _VR,
    bad_count as _bad_count,
    decode_uuid as _decode_uuid,
    merge_tags as _merge_tags,
    null_error as _null_error,
    pack_array as _pack_array,
    read_unknown_tags as _read_unknown_tags,
    read_uvarint as _uvarint,
    truncated as _truncated,
    unpack_array as _unpack_array,
    unsupported as _unsupported,
    uvarint_bytes as _uvb,
    write_tags as _write_tags,
    wrong_layout as _wrong_layout,
)

_UNSET = object()


def _tag_key(t):
    return t[0]

'''


def generate(schemas: Path) -> str:
    loaded = load_schemas(schemas)
    messages = [build_message(src, spec) for src, spec in loaded]
    messages.sort(key=lambda m: (m.kind not in ("request", "response"), m.api_key if m.api_key is not None else 0,
                                 m.kind, m.name))
    em = Emitter()
    class_lines: list[str] = []
    fn_lines: list[str] = []
    tail: list[str] = []
    for msg in messages:
        for v in range(msg.valid.lo, msg.valid.hi + 1):
            layout_for(msg.root, v, v in msg.flexible)
        # classes: children before parents
        for sd in msg.structs:
            class_lines += gen_class(sd, None)
        class_lines += gen_class(msg.root, msg)
        for sd in msg.structs + [msg.root]:
            for idx, (v, flexible) in sorted(layout_versions(sd).items()):
                fn_lines += gen_decoder(sd, idx, v, flexible, em)
                fn_lines.append("")
                fn_lines.append("")
                fn_lines += gen_encoder(sd, idx, v, flexible, em)
                fn_lines.append("")
                fn_lines.append("")
        root = msg.root
        dec = ["None"] * (msg.valid.hi + 1)
        enc = ["None"] * (msg.valid.hi + 1)
        for v in range(msg.valid.lo, msg.valid.hi + 1):
            dec[v] = fn_name(root, "d", root.by_version[v])
            enc[v] = fn_name(root, "e", root.by_version[v])
        tail.append(f"{root.pyname}._DEC = ({', '.join(dec)},)")
        tail.append(f"{root.pyname}._ENC = ({', '.join(enc)},)")
        pre: dict[str, list[str]] = {}
        for v in range(msg.valid.lo, msg.valid.hi + 1):
            for fl in field_layouts(root, v, v in msg.flexible):
                if fl.fd.pre_encoded:
                    pre.setdefault(fl.fd.attr, ["None"] * (msg.valid.hi + 1))[v] = \
                        fn_name(fl.fd.struct, "e", fl.child)  # type: ignore[arg-type]
        if pre:
            items = ", ".join(f"{k!r}: ({', '.join(fns)},)" for k, fns in pre.items())
            tail.append(f"{root.pyname}._PRE = {{{items}}}")
        for sd in msg.structs + [root]:
            specs = ",\n    ".join(field_spec(fd) for fd in sd.fields)
            tail.append(f"{sd.pyname}.FIELDS = (\n    {specs},\n)" if sd.fields else f"{sd.pyname}.FIELDS = ()")
            tail.append(f"{sd.pyname}.__qualname__ = {sd.qualname!r}")
            tail.append(f"{sd.pyname}.__name__ = {sd.qualname.split('.')[-1]!r}")
    structs = [f"{name} = _StructFmt({fmt!r})" for fmt, name in sorted(em.structs.items(), key=lambda x: x[1])]
    structs.append("_S_h = _StructFmt('>h')")
    structs.append("_S_i = _StructFmt('>i')")
    structs.append("_S_b = _StructFmt('>b')")
    structs = sorted(set(structs))
    index = ["", "", "REQUESTS: dict[int, type[_Message]] = {"]
    for m in messages:
        if m.kind == "request":
            index.append(f"    {m.api_key}: {m.name},")
    index.append("}")
    index.append("RESPONSES: dict[int, type[_Message]] = {")
    for m in messages:
        if m.kind == "response":
            index.append(f"    {m.api_key}: {m.name},")
    index.append("}")
    index.append("API_NAMES = {")
    for m in messages:
        if m.kind == "request":
            index.append(f"    {m.api_key}: {m.name[:-len('Request')]!r},")
    index.append("}")
    index.append("MESSAGES = {")
    for m in sorted(messages, key=lambda m: m.name):
        index.append(f"    {m.name!r}: {m.name},")
    index.append("}")
    index.append("__all__ = [")
    for m in sorted(messages, key=lambda m: m.name):
        index.append(f"    {m.name!r},")
    index += ["    'API_NAMES',", "    'MESSAGES',", "    'REQUESTS',", "    'RESPONSES',", "]"]
    sources = ", ".join(d for d in SCHEMA_DIRS if (schemas / d).is_dir())
    text = HEADER.format(sources=sources)
    text += "\n".join(structs) + "\n\n\n"
    text += "\n".join(class_lines)
    text += "\n".join(fn_lines)
    text += "\n".join(tail) + "\n"
    text += "\n".join(index) + "\n"
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--schemas", type=Path,
                    default=Path(os.environ.get("KAFKA_PROTOCOL_SCHEMAS", DEFAULT_SCHEMAS)),
                    help="directory holding messages-4.3/ and messages/ (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default: %(default)s)")
    ap.add_argument("--check", action="store_true", help="exit 1 if the committed output is stale")
    args = ap.parse_args(argv)
    text = generate(args.schemas)
    target = args.out / OUT_FILE
    if args.check:
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current != text:
            print(f"{target} is stale: rerun the generator", file=sys.stderr)
            return 1
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    # write atomically so a concurrent import never sees half a module
    fd, tmp = tempfile.mkstemp(dir=args.out, prefix=".gen-", suffix=".py")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)
    print(f"wrote {target} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
