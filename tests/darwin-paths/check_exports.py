"""Checks that the macOS libraries export the C API only: every symbol a
Mach-O dylib exports (its LC_DYSYMTAB external definitions, what
`nm -gU` lists) must be a libforks_* function or one the linker itself
defines for every image. Prints one line per library; exits 1 if any
exports more. Usage: check_exports.py LIB.dylib..."""

import struct
import sys

# Defined by the linker in every image, not by libforks.
LINKER_SYMBOLS = {"__mh_execute_header", "__mh_dylib_header", "___dso_handle"}


def exported(path):
    data = open(path, "rb").read()
    magic, _cpu, _sub, _kind, ncmds, _size, _flags, _reserved = struct.unpack_from("<IiiIIIII", data, 0)
    if magic != 0xFEEDFACF:
        raise SystemExit(f"{path}: not a 64-bit Mach-O file")
    offset = 32
    symtab = dysymtab = None
    for _ in range(ncmds):
        cmd, size = struct.unpack_from("<II", data, offset)
        if cmd == 0x2:  # LC_SYMTAB
            symtab = struct.unpack_from("<IIII", data, offset + 8)
        elif cmd == 0xB:  # LC_DYSYMTAB
            dysymtab = struct.unpack_from("<IIIIII", data, offset + 8)
        offset += size
    if symtab is None or dysymtab is None:
        raise SystemExit(f"{path}: no symbol table")
    symoff, _nsyms, stroff, _strsize = symtab
    _ilocal, _nlocal, iextdef, nextdef, _iundef, _nundef = dysymtab
    names = []
    for index in range(iextdef, iextdef + nextdef):
        strx = struct.unpack_from("<I", data, symoff + 16 * index)[0]
        end = data.index(b"\0", stroff + strx)
        names.append(data[stroff + strx : end].decode())
    return names


failed = 0
for path in sys.argv[1:]:
    names = exported(path)
    extra = [name for name in names if not name.startswith("_libforks_") and name not in LINKER_SYMBOLS]
    api = sum(1 for name in names if name.startswith("_libforks_"))
    if extra:
        failed += 1
        print(f"FAIL {path}: {api} libforks_* and {len(extra)} other exports, e.g. {', '.join(extra[:5])}")
    else:
        print(f"PASS {path}: {api} libforks_* exports, nothing else")
sys.exit(1 if failed else 0)
