"""Reading untrusted files: regular-file checks with a size cap, and a whitelisting pickle interpreter.

Shared by the StyleGAN2-ADA snapshot loader (``teachers/stylegan2/nvlabs_pickle.py``), gandistill's own
checkpoint format (``teachers/stylegan2/checkpoint.py``) and the CIFAR batch reader (``data/cifar.py``).

``read_regular_file`` opens without blocking (a FIFO cannot hang it), refuses anything that is not a
regular file (``/dev/zero``, a FIFO, a directory) and anything over a size cap, before reading a byte.

``SafeUnpickler`` is a small pickle virtual machine written for hostile input, not a subclass of
``pickle.Unpickler``: it imports and calls nothing by itself. Every global is resolved by the caller
to an ``Allowed`` stand-in; every opcode it does not know or allow is refused. Its invariants:

* **no cycles, bounded depth**: a container that has been placed inside another one is frozen (no
  more APPEND/SETITEM/BUILD on it), so the object graph is a DAG whose depth is known exactly when each
  node is built; deeper than ``Limits.max_depth`` is refused;
* **no hash flooding**: dict keys and set elements must be strings or bytes of bounded size (keyed
  SipHash: a file cannot make them collide; numbers and tuples can, so they are refused);
  memo indices are integers below 2**32 (distinct hashes);
* **typed mutation**: APPEND(S) only onto lists, SETITEM(S) only onto the dict types given,
  ADDITEMS only onto sets, BUILD only on the types given, always objects this interpreter created;
* **a budget** scaled to the file size and capped: every object created (containers and their slots,
  strings, numbers, memo entries, MARKs, a stand-in's copy of its argument) is charged its approximate
  memory, the bytes/str/containers handed to a call (REDUCE, BUILD) cost payload, and every opcode costs
  one op, so re-using one memoised object over and over cannot make a small file expensive and a file
  of opcodes alone stays within a few times its size (and ~66 MB) in memory;
* **clean errors**: anything going wrong becomes ``SafeLoadError`` (``ForbiddenError`` for
  something outside the allow-list), with bounded messages (``summary`` never formats attacker data
  beyond a few dozen characters).
"""
from __future__ import annotations

import codecs
import errno
import gc
import mmap
import os
import pickle
import pickletools
import stat
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

from gandistill.io.errors import UnsafeFileError
from gandistill.io.files import file_kind, mib

PathLike = Union[str, "os.PathLike[str]"]


class SafeLoadError(UnsafeFileError):
    """An untrusted file could not be read safely (corrupt, truncated, too large, or hostile)."""


class ForbiddenError(SafeLoadError):
    """The file asked for something outside the allow-list (a global, an opcode, a BUILD target)."""


# ------------------------------------------------------------------------------------------------ messages


def summary(obj: Any, limit: int = 60) -> str:
    """A bounded ``repr``: at most about ``limit`` characters, never walks more than that many nodes."""
    out: List[str] = []
    budget = [max(limit, 8)]

    def put(s: str) -> None:
        out.append(s[: budget[0]])
        budget[0] -= len(s)

    def walk(o: Any, depth: int) -> None:
        if budget[0] <= 0:
            return
        t = type(o)
        if o is None or t in (bool, float):
            put(repr(o))
        elif t is int:
            put(repr(o) if o.bit_length() <= 128 else f"<int of {o.bit_length()} bits>")
        elif t in (str, bytes, bytearray):
            put(repr(o[: budget[0]]) + ("..." if len(o) > budget[0] else ""))
        elif isinstance(o, (list, tuple, dict, set, frozenset)):
            if depth >= 4:
                put(f"<{t.__name__} of {len(o)}>")
                return
            ends = {list: "[]", tuple: "()", dict: "{}", set: "{}", frozenset: "{}"}
            ends_s = next((v for k, v in ends.items() if isinstance(o, k)), "[]")
            put((t.__name__ if t not in ends else "") + ends_s[0])
            items = o.items() if isinstance(o, dict) else o
            for i, item in enumerate(items):
                if budget[0] <= 0:
                    break
                if i:
                    put(", ")
                if isinstance(o, dict):
                    walk(item[0], depth + 1)
                    put(": ")
                    walk(item[1], depth + 1)
                else:
                    walk(item, depth + 1)
            put(ends_s[1])
        else:
            put(f"<{t.__name__}>")

    walk(obj, 0)
    text = "".join(out)
    return text if budget[0] > 0 else text[:limit] + "..."


def brief(e: BaseException, limit: int = 200) -> str:
    """``Type: first line of the message`` (bounded; no C++ backtrace, no formatting of non-str args)."""
    args = getattr(e, "args", ())
    if isinstance(e, OSError) and e.strerror:
        text = e.strerror
    elif isinstance(e, UnicodeError):  # its str() names only the offending position and byte
        text = str(e)
    elif args and isinstance(args[0], str):
        text = args[0]
    elif args:
        text = summary(args[0], limit)
    else:
        text = ""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    line = lines[0][:limit] if lines else ""
    return f"{type(e).__name__}: {line}" if line else type(e).__name__


# ------------------------------------------------------------------------------------------------ files


def read_regular_file(path: PathLike, max_bytes: int, *, what: str = "file", follow_symlinks: bool = True,
                      mutable: bool = False) -> Union[bytes, bytearray, mmap.mmap]:
    """The bytes of ``path`` if it is a regular file of at most ``max_bytes``; else ``SafeLoadError``.

    Opens with ``O_NONBLOCK`` (a FIFO cannot block), checks ``fstat`` of the opened descriptor (so what
    is checked is what is read), refuses non-regular files and oversized files before reading, and
    refuses a file that grows while being read. ``follow_symlinks=False`` refuses a symlink as the last
    path component. ``mutable=True`` returns a writable buffer (anonymous ``mmap``, bytes-like: indexing,
    slicing, ``find``) read in one pass, for zero-copy views of it.
    A missing file raises ``FileNotFoundError``.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as e:
        if e.errno == errno.ELOOP and not follow_symlinks:
            raise SafeLoadError(f"{path}: the {what} is a symbolic link; refusing to follow it") from None
        raise SafeLoadError(f"{path}: cannot open the {what} ({brief(e)})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SafeLoadError(f"{path}: the {what} is {file_kind(st.st_mode)}, not a regular file; refusing to read it")
        if st.st_size > max_bytes:
            raise SafeLoadError(f"{path}: the {what} is {mib(st.st_size)}, over the {mib(max_bytes)} limit; "
                                "refusing to read it")
        with os.fdopen(fd, "rb", closefd=True) as f:
            fd = -1
            if mutable:  # one read straight into a buffer the caller may view and modify (no copy)
                # anonymous memory: untouched until the read fills it (a bytearray would be zeroed first)
                data = mmap.mmap(-1, max(st.st_size, 1)) if st.st_size else bytearray()
                view, got = memoryview(data)[:st.st_size], 0
                while got < st.st_size:
                    n = f.readinto(view[got:])
                    if not n:
                        break
                    got += n
                view.release()
                if got < st.st_size:
                    raise SafeLoadError(f"{path}: the {what} shrank while being read; refusing")
                if f.read(1):
                    raise SafeLoadError(f"{path}: the {what} grew while being read; refusing")
            else:
                data = f.read(st.st_size + 1)
    except OSError as e:
        raise SafeLoadError(f"{path}: cannot read the {what} ({brief(e)})") from None
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > st.st_size:
        raise SafeLoadError(f"{path}: the {what} grew while being read; refusing")
    return data


def regular_size(path: PathLike, what: str = "file") -> int:
    """``os.stat(path).st_size`` if ``path`` (after symlinks) is a regular file, else ``SafeLoadError``."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise SafeLoadError(f"{path}: the {what} is {file_kind(st.st_mode)}, not a regular file; refusing to read it")
    return st.st_size


def resolve_inside(folder: PathLike, name: str, what: str = "file") -> Path:
    """``folder / name`` with symlinks resolved, refused unless it stays inside ``folder`` (resolved)."""
    root = Path(folder).resolve()
    target = (Path(folder) / name).resolve()
    if target != root and root not in target.parents:
        raise SafeLoadError(f"{Path(folder) / name}: the {what} resolves to {target}, outside the folder {root}; "
                            "refusing to follow it")
    return target


# ------------------------------------------------------------------------------------------------ pickle VM


@dataclass(frozen=True)
class Limits:
    """Bounds of ``SafeUnpickler``; the budgets scale with the size of the data being read."""

    max_depth: int = 100           # nesting of containers / call results
    max_key_len: int = 1024        # characters of a str/bytes dict key or set element
    max_key_nodes: int = 32        # (kept for callers; keys are strings/bytes only since issue 15)
    max_int_bytes: int = 256       # LONG1/LONG4 payload
    max_line: int = 4096           # text opcodes (GLOBAL, INT, ...)
    max_name: int = 256            # module / name of a global
    max_memo_index: int = 2 ** 32 - 1  # memo keys are 0..2**32-1: distinct ints, distinct hashes
    mem_per_byte: int = 8          # estimated bytes of Python objects the pickle may create per byte of file,
    mem_cap: int = 64 << 20        # up to this much (honest snapshots of any size use ~2 MB: the tensor
    mem_slack: int = 2 << 20       # bytes are zero-copy views, not objects)
    data_per_byte: int = 4         # characters of str/bytes objects per byte of file (a str of one astral
    data_slack: int = 1 << 20      # character and k ASCII ones takes 4k bytes); linear, never capped
    payload_per_byte: int = 2
    payload_slack: int = 65536
    ops_floor: int = 200_000       # opcodes: honest snapshots run ~21k whatever their size (1 MB or 240 MB)
    bytes_per_op: int = 16
    ops_cap: int = 1_000_000


# approximate CPython sizes (bytes) charged to the memory budget for each object a pickle creates
MEM_OBJECT = {list: 56, tuple: 40, dict: 64, set: 216, frozenset: 216, bytearray: 57, str: 49, bytes: 33,
              int: 28, float: 24}
MEM_SLOT = {list: 8, tuple: 8, dict: 48, set: 40, frozenset: 40}
MEM_TRACKED = 120   # the interpreter's own bookkeeping of a tracked (mutable or nesting) object
MEM_OTHER = 96      # any other object (a stand-in's result, an OrderedDict, a memo entry)


class Budget:
    """Work a pickle may ask for: ``mem`` (estimated bytes of the objects it creates, so a file of opcodes
    alone stays within ``min(mem_per_byte x its size, mem_cap) + mem_slack``), ``payload`` (bytes and items
    handed to calls and BUILD) and ``ops`` (opcodes executed, at most ``ops_floor + min(size / bytes_per_op,
    ops_cap)``, which bounds the time of a file of nothing but opcodes at any size).

    ``nodes`` (the old unit: one container slot) is kept as a view of ``mem`` for callers that charge it.
    """

    NODE_BYTES = 48

    def __init__(self, size: int, limits: Limits = Limits()):
        self.mem = min(limits.mem_per_byte * size, limits.mem_cap) + limits.mem_slack
        self.max_mem = self.mem
        self.data = limits.data_per_byte * size + limits.data_slack
        self.payload = limits.payload_per_byte * size + limits.payload_slack
        self.ops = limits.ops_floor + min(size // limits.bytes_per_op, limits.ops_cap)
        self.max_ops = self.ops

    @property
    def nodes(self) -> int:
        return self.mem // self.NODE_BYTES

    def charge(self, nodes: int = 0, payload: int = 0, mem: int = 0, data: int = 0) -> None:
        self.mem -= nodes * self.NODE_BYTES + mem
        self.payload -= payload
        self.data -= data
        if self.mem < 0 or self.payload < 0 or self.data < 0:
            self.refuse()

    def refuse(self) -> None:
        what = "memory" if self.mem < 0 or self.data < 0 else "work"
        raise SafeLoadError(f"the pickle asks for far more {what} than its size justifies (a memory bomb or a "
                            "time bomb?); refusing")


def payload_of(obj: Any) -> int:
    """What handing ``obj`` to a call costs: its length, plus that of the items of a top-level tuple/list."""
    def one(o: Any) -> int:
        if isinstance(o, memoryview):
            return 64  # a zero-copy view: the call reads it at most once (see its caller)
        return len(o) if isinstance(o, (str, bytes, bytearray, list, tuple, dict, set, frozenset)) else 0

    cost = one(obj)
    if type(obj) in (tuple, list):
        cost += sum(one(o) for o in obj)
    return cost


def mem_of(obj: Any, slots: int = 0) -> int:
    """The memory charged for creating ``obj`` holding ``slots`` items (a string's characters are charged
    to the data budget instead: ``data_of``)."""
    t = type(obj)
    base = MEM_OBJECT.get(t)
    if base is None:
        return MEM_OTHER + 48 * slots
    if t in (str, bytes, bytearray):
        return base
    return base + MEM_SLOT.get(t, 8) * slots


def data_of(obj: Any) -> int:
    """The characters' share of a str/bytes/bytearray's memory (``sys.getsizeof`` is O(1) for them)."""
    return sys.getsizeof(obj) - MEM_OBJECT[str] if type(obj) in (str, bytes, bytearray) else 0


@dataclass(frozen=True)
class Allowed:
    """What a resolved global may do: be called by REDUCE (``call``) and/or instantiated by NEWOBJ with no
    arguments (``new``). Neither: it may only be passed around (e.g. a storage type inside a record)."""

    call: Optional[Callable[..., Any]] = None
    new: Optional[Callable[[], Any]] = None


class Global:
    """A resolved global on the pickle stack (never the real object: the stand-in ``Allowed``)."""

    __slots__ = ("module", "name", "allowed")

    def __init__(self, module: str, name: str, allowed: Allowed):
        self.module, self.name, self.allowed = module, name, allowed

    def __repr__(self) -> str:
        return f"<global {self.module}.{self.name}>"


_PRIM = (type(None), bool, int, float, str, bytes, memoryview)
_MISSING = object()
_PRIM_SET = frozenset(_PRIM)
BuildHandler = Callable[[Any, Any, "SafeUnpickler"], None]


class _Stop(Exception):
    pass


class SafeUnpickler:
    """Run one pickle from ``data[pos:]`` under the rules in the module docstring; ``load()`` -> the object.

    ``find_class(module, name) -> Allowed`` resolves globals (raise ``ForbiddenError`` to refuse);
    ``build`` maps exact types to ``handler(obj, state, vm)`` for BUILD; ``dict_types`` are the types
    SETITEM(S) may target; ``persistent_load`` enables (BIN)PERSID; ``str8`` says how protocol-0..2
    byte strings (Python 2 ``str``) come back: ``"bytes"`` or ``"latin1"``. ``budget`` may be shared by
    several unpicklers over one file; ``pos`` is where the next pickle starts after ``load()``.
    """

    def __init__(self, data: bytes, *, find_class: Callable[[str, str], Allowed], pos: int = 0,
                 budget: Optional[Budget] = None, limits: Limits = Limits(),
                 build: Optional[Mapping[type, BuildHandler]] = None, dict_types: Tuple[type, ...] = (dict,),
                 persistent_load: Optional[Callable[[Any], Any]] = None, str8: str = "bytes",
                 fmt: str = "this file format", big_bytes: Optional[int] = None):
        self.data = data
        # BINBYTES of at least ``big_bytes`` come back as zero-copy memoryviews of ``data`` (opt-in: the caller
        # must accept memoryviews where it expects bytes)
        self.big_bytes = big_bytes
        self._mv = memoryview(data)
        self.pos = pos
        self.find_class = find_class
        self.limits = limits
        self.budget = budget if budget is not None else Budget(len(data) - pos, limits)
        self.build = dict(build or {})
        self.dict_types = tuple(dict_types)
        self.persistent_load = persistent_load
        self.str8 = str8
        self.fmt = fmt
        self.stack: List[Any] = []
        self.metastack: List[List[Any]] = []
        self.memo: Dict[int, Any] = {}
        # tracked objects (containers holding containers, and every mutable one): id -> nesting depth;
        # ids of frozen ones (placed inside another object); _keep holds them so no id is ever reused
        self._depths: Dict[int, int] = {}
        self._frozen: set = set()
        self._keep: List[Any] = []
        self._op_pos = pos
        self._result: Any = None

    # ------------------------------------------------------------------ driver
    def load(self) -> Any:
        """Execute opcodes until STOP; any failure is a ``SafeLoadError``.

        The cyclic garbage collector is paused meanwhile: the object graph built here has no cycles,
        and collections triggered by many small containers would make hostile files slow.
        """
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._load()
        finally:
            if gc_was_enabled:
                gc.enable()

    def _load(self) -> Any:
        data, n, dispatch, budget = self.data, len(self.data), self._DISPATCH, self.budget
        try:
            while True:
                budget.ops -= 1
                if budget.ops < 0:
                    raise SafeLoadError(f"the pickle has more than {budget.max_ops} opcodes, far more than a file "
                                        "of its size needs; refusing")
                if self.pos >= n:
                    raise self._truncated("the end of the data, before STOP")
                self._op_pos = self.pos
                code = data[self.pos]
                self.pos += 1
                handler = dispatch.get(code)
                if handler is None:
                    raise self._error(f"unknown pickle opcode {bytes([code])!r}")
                handler(self)
        except _Stop:
            return self._result
        except SafeLoadError:
            raise
        except RecursionError:
            raise SafeLoadError(f"the pickle nests too deep (at byte {self._op_pos}); refusing") from None
        except MemoryError:
            raise SafeLoadError(f"out of memory while reading the pickle (at byte {self._op_pos})") from None
        except Exception as e:  # a stand-in's TypeError, a torch RuntimeError, ...
            raise SafeLoadError(f"the pickle is corrupt at byte {self._op_pos} ({brief(e)})") from None

    # ------------------------------------------------------------------ errors
    def _error(self, msg: str, forbidden: bool = False) -> SafeLoadError:
        cls = ForbiddenError if forbidden else SafeLoadError
        return cls(f"{msg} at byte {self._op_pos}; refusing" if forbidden else
                   f"the pickle is corrupt at byte {self._op_pos}: {msg}")

    def _truncated(self, where: str) -> SafeLoadError:
        return SafeLoadError(f"the pickle is truncated or corrupt (it reaches {where} at byte {self._op_pos})")

    # ------------------------------------------------------------------ reading
    def _take(self, k: int) -> bytes:
        end = self.pos + k
        if k < 0 or end > len(self.data):
            raise self._truncated("past the end of the data")
        out = bytes(self._mv[self.pos:end])
        self.pos = end
        if k > 1:
            self.budget.charge(mem=MEM_OBJECT[bytes], data=k)
        return out

    def _view(self, k: int) -> memoryview:
        """``k`` bytes as a memoryview of the data (no copy)."""
        end = self.pos + k
        if k < 0 or end > len(self.data):
            raise self._truncated("past the end of the data")
        out = self._mv[self.pos:end]
        self.pos = end
        self.budget.charge(mem=MEM_OTHER * 2)
        return out

    def _unpack(self, fmt: str, size: int) -> Any:
        if self.pos + size > len(self.data):
            raise self._truncated("past the end of the data")
        v = struct.unpack_from(fmt, self.data, self.pos)[0]
        self.pos += size
        return v

    def _byte(self) -> int:
        pos = self.pos
        if pos >= len(self.data):
            raise self._truncated("past the end of the data")
        self.pos = pos + 1
        return self.data[pos]

    def _line(self, unbounded: bool = False) -> bytes:
        """A text argument up to its newline: at most ``max_line`` bytes, except for string opcodes
        (``unbounded``: protocol 0 writes whole tensor blobs as one line; decoding them is linear)."""
        limit = len(self.data) if unbounded else self.limits.max_line
        end = self.data.find(b"\n", self.pos, self.pos + limit + 1)
        if end < 0:
            if self.pos + limit >= len(self.data):
                raise self._truncated("the end of the data inside a text argument")
            raise self._error(f"a text argument is longer than {limit} bytes")
        out = self.data[self.pos:end]
        self.pos = end + 1
        return out

    # ------------------------------------------------------------------ object tracking
    def _pop(self) -> Any:
        if not self.stack:
            raise self._error("the stack is empty")
        return self.stack.pop()

    def _top(self) -> Any:
        if not self.stack:
            raise self._error("the stack is empty")
        return self.stack[-1]

    def _pop_mark(self) -> List[Any]:
        if not self.metastack:
            raise self._error("no MARK to pop to")
        items = self.stack
        self.stack = self.metastack.pop()
        return items

    def _too_deep(self) -> SafeLoadError:
        return SafeLoadError(f"the pickle nests deeper than {self.limits.max_depth} levels (at byte "
                             f"{self._op_pos}); refusing")

    def _adopt(self, target: Any, depth: int, children: Any) -> int:
        """``children`` go inside ``target`` (of depth ``depth``): freeze them, return the new depth.

        Untracked non-primitives (tuples of primitives, globals) count as one level.
        """
        depths, frozen = self._depths, self._frozen
        for c in children:
            if type(c) in _PRIM_SET:
                continue
            if c is target:
                raise self._error(f"a {type(target).__name__} is put inside itself (a cycle)", forbidden=True)
            cid = id(c)
            cd = depths.get(cid)
            if cd is None:
                cd = 1
            else:
                frozen.add(cid)
            if cd >= depth:
                depth = cd + 1
        if depth > self.limits.max_depth:
            raise self._too_deep()
        return depth

    def register(self, obj: Any, children: Any = (), slots: int = 0) -> Any:
        """Track a newly created ``obj`` (open, i.e. still mutable) holding ``children``; charge the budget."""
        budget = self.budget
        t = type(obj)
        budget.mem -= mem_of(obj, slots)
        if budget.mem < 0:
            budget.refuse()
        if t in (str, bytes, bytearray):
            budget.charge(data=data_of(obj))
        if t in _PRIM_SET or id(obj) in self._depths:
            return obj
        depth = self._adopt(obj, 1, children)
        if t is tuple and depth == 1:  # immutable and holds only primitives: nothing to remember
            return obj
        budget.mem -= MEM_TRACKED
        self._depths[id(obj)] = depth
        self._keep.append(obj)
        return obj

    def _open(self, obj: Any, kinds: Tuple[type, ...], verb: str, what: str) -> int:
        """The depth of ``obj`` if this opcode may mutate it (a type in ``kinds``, created here, not frozen)."""
        if type(obj) not in kinds:
            raise self._error(f"this file wants to {verb} a {type(obj).__name__} object; only {what} can be "
                              f"(not part of {self.fmt})", forbidden=True)
        oid = id(obj)
        depth = self._depths.get(oid)
        if depth is None:
            raise self._error(f"this file wants to {verb} a {type(obj).__name__} it did not create", forbidden=True)
        if oid in self._frozen:
            raise self._error(f"this file modifies a {type(obj).__name__} after placing it inside another object "
                              "(a cycle or a re-opened container)", forbidden=True)
        return depth

    def _mutated(self, target: Any, depth: int, children: Any) -> None:
        self._depths[id(target)] = self._adopt(target, depth, children)

    def check_key(self, k: Any) -> None:
        """Dict keys / set elements: bounded strings or bytes only.

        Their hashes are keyed (SipHash with a per-process secret), so a file cannot make many keys hash
        alike; numbers (``hash(n) == n mod 2**61-1``) and tuples of them can, which would make every
        insertion probe all earlier keys (quadratic time), so they are refused. No supported format uses
        them as keys.
        """
        t = type(k)
        if t is str or t is bytes:
            if len(k) > self.limits.max_key_len:
                raise self._error(f"a dict key / set element of {len(k)} characters (more than "
                                  f"{self.limits.max_key_len})", forbidden=True)
            return
        raise self._error(f"a dict key / set element is a {t.__name__}; only strings are allowed (numbers and "
                          "tuples can be made to collide in the hash table)", forbidden=True)

    def set_items(self, target: Any, pairs: List[Tuple[Any, Any]]) -> None:
        """SETITEM(S) semantics onto ``target`` (an allowed dict type this VM created and has not frozen)."""
        depth = self._open(target, self.dict_types, "set items of", "dicts")
        self.budget.charge(mem=len(pairs) * (MEM_SLOT[dict] if type(target) is dict else MEM_OTHER))
        for k, v in pairs:
            self.check_key(k)
            depth = self._adopt(target, depth, (k, v))
            target[k] = v
        self._depths[id(target)] = depth

    # ------------------------------------------------------------------ opcodes: structure
    def _proto(self) -> None:
        proto = self._byte()
        if proto > 5:
            raise self._error(f"unsupported pickle protocol {proto}")

    def _frame(self) -> None:
        size = self._unpack("<Q", 8)
        if size > len(self.data) - self.pos:
            raise self._truncated("past the end of the data (FRAME)")

    def _stop(self) -> None:
        self._result = self._pop()
        raise _Stop

    def _mark(self) -> None:
        self.budget.mem -= MEM_OBJECT[list] + 8
        if self.budget.mem < 0:
            self.budget.refuse()
        self.metastack.append(self.stack)
        self.stack = []

    def _pop_op(self) -> None:
        if self.stack:
            self.stack.pop()
        else:
            self._pop_mark()

    def _pop_mark_op(self) -> None:
        self._pop_mark()

    def _dup(self) -> None:
        self.stack.append(self._top())

    # ------------------------------------------------------------------ opcodes: primitives
    def _none(self) -> None:
        self.stack.append(None)

    def _true(self) -> None:
        self.stack.append(True)

    def _false(self) -> None:
        self.stack.append(False)

    def _number(self, v: Any) -> None:
        self.budget.mem -= 32
        if self.budget.mem < 0:
            self.budget.refuse()
        self.stack.append(v)

    def _binint(self) -> None:
        self._number(self._unpack("<i", 4))

    def _binint1(self) -> None:
        self.stack.append(self._byte())

    def _binint2(self) -> None:
        self._number(self._unpack("<H", 2))

    def _long_bytes(self, n: int) -> None:
        if n < 0:
            raise self._error("negative LONG length")
        if n > self.limits.max_int_bytes:
            raise self._error(f"an integer of {n} bytes (more than {self.limits.max_int_bytes})", forbidden=True)
        self._number(int.from_bytes(self._take(n), "little", signed=True))

    def _long1(self) -> None:
        self._long_bytes(self._byte())

    def _long4(self) -> None:
        self._long_bytes(self._unpack("<i", 4))

    def _int_text(self) -> None:
        line = self._line()
        if line in (b"00", b"01"):
            self.stack.append(line == b"01")
        else:
            self._number(int(line))

    def _long_text(self) -> None:
        line = self._line()
        self._number(int(line[:-1] if line.endswith(b"L") else line))

    def _float_text(self) -> None:
        self._number(float(self._line()))

    def _binfloat(self) -> None:
        self._number(self._unpack(">d", 8))

    def _bytes(self, n: int, kind: type = bytes) -> None:
        if kind is bytes and self.big_bytes is not None and n >= self.big_bytes:
            self.stack.append(self._view(n))
            return
        b = self._take(n)
        self.stack.append(b if kind is bytes else self.register(bytearray(b)))

    def _short_binbytes(self) -> None:
        self._bytes(self._byte())

    def _binbytes(self) -> None:
        self._bytes(self._unpack("<I", 4))

    def _binbytes8(self) -> None:
        self._bytes(self._unpack("<Q", 8))

    def _bytearray8(self) -> None:
        self._bytes(self._unpack("<Q", 8), bytearray)

    def _str8(self, b: bytes) -> None:
        self.stack.append(b if self.str8 == "bytes" else b.decode("latin1"))

    def _short_binstring(self) -> None:
        self._str8(self._take(self._byte()))

    def _binstring(self) -> None:
        n = self._unpack("<i", 4)
        if n < 0:
            raise self._error("negative BINSTRING length")
        self._str8(self._take(n))

    def _string_text(self) -> None:
        line = self._line(True)
        if len(line) < 2 or line[:1] != line[-1:] or line[:1] not in (b"'", b'"'):
            raise self._error("STRING argument is not quoted")
        self._str8(codecs.escape_decode(line[1:-1])[0])

    def _unicode(self, b: bytes) -> None:
        self._push_str(str(b, "utf-8", "surrogatepass"))

    def _push_str(self, s: str) -> None:
        self.budget.charge(mem=MEM_OBJECT[str], data=data_of(s))  # may be wider than its UTF-8 bytes
        self.stack.append(s)

    def _short_binunicode(self) -> None:
        self._unicode(self._take(self._byte()))

    def _binunicode(self) -> None:
        self._unicode(self._take(self._unpack("<I", 4)))

    def _binunicode8(self) -> None:
        self._unicode(self._take(self._unpack("<Q", 8)))

    def _unicode_text(self) -> None:
        self._push_str(str(self._line(True), "raw-unicode-escape"))

    # ------------------------------------------------------------------ opcodes: containers
    def _empty_list(self) -> None:
        self.stack.append(self.register([]))

    def _empty_dict(self) -> None:
        self.stack.append(self.register({}))

    def _empty_set(self) -> None:
        self.stack.append(self.register(set()))

    def _empty_tuple(self) -> None:
        self.stack.append(())

    def _tuple_of(self, items: List[Any]) -> None:
        t = tuple(items)
        self.stack.append(self.register(t, t, slots=len(t)) if t else t)

    def _tuple(self) -> None:
        self._tuple_of(self._pop_mark())

    def _tuple_n(self, k: int) -> None:
        stack = self.stack
        if len(stack) < k:
            raise self._error("the stack is empty")
        t = tuple(stack[-k:])
        stack[-k:] = [self.register(t, t, slots=k)]

    def _tuple1(self) -> None:
        self._tuple_n(1)

    def _tuple2(self) -> None:
        self._tuple_n(2)

    def _tuple3(self) -> None:
        self._tuple_n(3)

    def _list(self) -> None:
        items = self._pop_mark()
        self.stack.append(self.register(items, items, slots=len(items)))

    def _dict(self) -> None:
        items = self._pop_mark()
        if len(items) % 2:
            raise self._error("DICT with an odd number of items")
        d = self.register({})
        self.set_items(d, list(zip(items[::2], items[1::2])))
        self.stack.append(d)

    def _frozenset(self) -> None:
        items = self._pop_mark()
        for k in items:
            self.check_key(k)
        self.stack.append(self.register(frozenset(items), (), slots=len(items)))

    def _append(self) -> None:
        value = self._pop()
        target = self._top()
        depth = self._open(target, (list,), "append to", "lists")
        self.budget.charge(mem=MEM_SLOT[list])
        self._mutated(target, depth, (value,))
        target.append(value)

    def _appends(self) -> None:
        items = self._pop_mark()
        target = self._top()
        depth = self._open(target, (list,), "append to", "lists")
        self.budget.charge(mem=len(items) * MEM_SLOT[list])
        self._mutated(target, depth, items)
        target.extend(items)

    def _setitem(self) -> None:
        value = self._pop()
        key = self._pop()
        self.set_items(self._top(), [(key, value)])

    def _setitems(self) -> None:
        items = self._pop_mark()
        if len(items) % 2:
            raise self._error("SETITEMS with an odd number of items")
        self.set_items(self._top(), list(zip(items[::2], items[1::2])))

    def _additems(self) -> None:
        items = self._pop_mark()
        target = self._top()
        depth = self._open(target, (set,), "add items to", "sets")
        self.budget.charge(mem=len(items) * MEM_SLOT[set])
        for k in items:
            self.check_key(k)
        self._mutated(target, depth, items)
        target.update(items)

    # ------------------------------------------------------------------ opcodes: memo
    def _put_at(self, idx: int) -> None:
        if idx < 0 or idx > self.limits.max_memo_index:
            raise self._error(f"memo index {summary(idx)} out of range")
        if idx not in self.memo:
            self.budget.mem -= MEM_OTHER
            if self.budget.mem < 0:
                self.budget.refuse()
        self.memo[idx] = self._top()

    def _get_at(self, idx: int) -> None:
        try:
            self.stack.append(self.memo[idx])
        except KeyError:
            raise self._error(f"memo entry {idx} is used before it is defined") from None

    def _put(self) -> None:
        line = self._line()
        if len(line) > 12:
            raise self._error("memo index out of range")
        self._put_at(int(line))

    def _binput(self) -> None:
        self._put_at(self._byte())

    def _long_binput(self) -> None:
        self._put_at(self._unpack("<I", 4))

    def _memoize(self) -> None:
        if not self.stack:
            raise self._error("the stack is empty")
        self._put_at(len(self.memo))

    def _get(self) -> None:
        line = self._line()
        if len(line) > 12:
            raise self._error("memo index out of range")
        self._get_at(int(line))

    def _binget(self) -> None:
        pos = self.pos
        if pos >= len(self.data):
            raise self._truncated("past the end of the data")
        self.pos = pos + 1
        v = self.memo.get(self.data[pos], _MISSING)
        if v is _MISSING:
            self._get_at(self.data[pos])
        self.stack.append(v)

    def _long_binget(self) -> None:
        self._get_at(self._unpack("<I", 4))

    # ------------------------------------------------------------------ opcodes: globals and calls
    def _resolve(self, module: Any, name: Any) -> None:
        if type(module) is not str or type(name) is not str:
            raise self._error("a global's module and name must be strings")
        if len(module) > self.limits.max_name or len(name) > self.limits.max_name:
            raise self._error("a global with an over-long name", forbidden=True)
        allowed = self.find_class(module, name)
        if not isinstance(allowed, Allowed):
            raise TypeError("find_class must return an Allowed")
        self.stack.append(Global(module, name, allowed))

    def _global(self) -> None:
        module = self._line().decode("utf-8")
        name = self._line().decode("utf-8")
        self._resolve(module, name)

    def _stack_global(self) -> None:
        name = self._pop()
        module = self._pop()
        self._resolve(module, name)

    def _reduce(self) -> None:
        args = self._pop()
        func = self._top()
        if type(func) is not Global or func.allowed.call is None:
            what = f"{func.module}.{func.name}" if type(func) is Global else f"a {type(func).__name__} object"
            raise self._error(f"this file wants to call {what} (pickle REDUCE), which {self.fmt} never calls",
                              forbidden=True)
        if type(args) is not tuple:
            raise self._error(f"REDUCE arguments are a {type(args).__name__}, not a tuple")
        self.budget.charge(nodes=1, payload=payload_of(args))
        result = func.allowed.call(*args)
        # a stand-in that copies its argument (a dict subclass built from a shared dict) pays for the copy
        slots = len(result) if isinstance(result, (dict, list, tuple, set, frozenset)) else 0
        self.stack[-1] = self.register(result, args, slots=slots)

    def _newobj(self) -> None:
        args = self._pop()
        cls = self._pop()
        if type(cls) is not Global or cls.allowed.new is None:
            what = f"{cls.module}.{cls.name}" if type(cls) is Global else f"a {type(cls).__name__} object"
            raise self._error(f"this file wants to instantiate {what} (pickle NEWOBJ)", forbidden=True)
        if args != ():
            raise self._error(f"{cls.module}.{cls.name} is instantiated with arguments (pickle NEWOBJ)",
                              forbidden=True)
        self.stack.append(self.register(cls.allowed.new()))

    def _build_op(self) -> None:
        state = self._pop()
        inst = self._top()
        handler = self.build.get(type(inst))
        if handler is None:
            raise self._error(f"this file wants to set the state of a {type(inst).__name__} object (pickle BUILD)"
                              f" (not part of {self.fmt})", forbidden=True)
        self._open(inst, (type(inst),), "set the state of", "its own objects")
        self.budget.charge(nodes=1, payload=payload_of(state))
        handler(inst, state, self)  # a handler that keeps parts of the state adds them with set_items

    def _persid(self, pid: Any) -> None:
        if self.persistent_load is None:
            raise self._error(f"this file uses persistent ids, which {self.fmt} does not", forbidden=True)
        self.budget.charge(nodes=1, payload=payload_of(pid))
        self.stack.append(self.register(self.persistent_load(pid), (pid,)))

    def _persid_text(self) -> None:
        self._persid(self._line().decode("ascii"))

    def _binpersid(self) -> None:
        self._persid(self._pop())

    def _forbidden(self) -> None:
        names = {op.code.encode("latin1")[0]: op.name for op in pickletools.opcodes}
        name = names.get(self.data[self._op_pos], "?")
        raise self._error(f"this file uses the pickle opcode {name}, which {self.fmt} never needs", forbidden=True)

    _DISPATCH: Dict[int, Callable[["SafeUnpickler"], None]] = {}


def _init_dispatch() -> None:
    p = pickle
    U = SafeUnpickler
    table = {
        p.PROTO: U._proto, p.FRAME: U._frame, p.STOP: U._stop, p.MARK: U._mark, p.POP: U._pop_op,
        p.POP_MARK: U._pop_mark_op, p.DUP: U._dup,
        p.NONE: U._none, p.NEWTRUE: U._true, p.NEWFALSE: U._false, p.BININT: U._binint, p.BININT1: U._binint1,
        p.BININT2: U._binint2, p.LONG1: U._long1, p.LONG4: U._long4, p.INT: U._int_text, p.LONG: U._long_text,
        p.FLOAT: U._float_text, p.BINFLOAT: U._binfloat,
        p.SHORT_BINBYTES: U._short_binbytes, p.BINBYTES: U._binbytes, p.BINBYTES8: U._binbytes8,
        p.BYTEARRAY8: U._bytearray8, p.SHORT_BINSTRING: U._short_binstring, p.BINSTRING: U._binstring,
        p.STRING: U._string_text, p.SHORT_BINUNICODE: U._short_binunicode, p.BINUNICODE: U._binunicode,
        p.BINUNICODE8: U._binunicode8, p.UNICODE: U._unicode_text,
        p.EMPTY_LIST: U._empty_list, p.EMPTY_DICT: U._empty_dict, p.EMPTY_SET: U._empty_set,
        p.EMPTY_TUPLE: U._empty_tuple, p.TUPLE: U._tuple, p.TUPLE1: U._tuple1, p.TUPLE2: U._tuple2,
        p.TUPLE3: U._tuple3, p.LIST: U._list, p.DICT: U._dict, p.FROZENSET: U._frozenset,
        p.APPEND: U._append, p.APPENDS: U._appends, p.SETITEM: U._setitem, p.SETITEMS: U._setitems,
        p.ADDITEMS: U._additems,
        p.PUT: U._put, p.BINPUT: U._binput, p.LONG_BINPUT: U._long_binput, p.MEMOIZE: U._memoize,
        p.GET: U._get, p.BINGET: U._binget, p.LONG_BINGET: U._long_binget,
        p.GLOBAL: U._global, p.STACK_GLOBAL: U._stack_global, p.REDUCE: U._reduce, p.NEWOBJ: U._newobj,
        p.BUILD: U._build_op, p.PERSID: U._persid_text, p.BINPERSID: U._binpersid,
        # known opcodes that no supported format needs: refused by name
        p.INST: U._forbidden, p.OBJ: U._forbidden, p.EXT1: U._forbidden, p.EXT2: U._forbidden,
        p.EXT4: U._forbidden, p.NEWOBJ_EX: U._forbidden, p.NEXT_BUFFER: U._forbidden,
        p.READONLY_BUFFER: U._forbidden,
    }
    SafeUnpickler._DISPATCH = {k[0]: v for k, v in table.items()}


_init_dispatch()


# ------------------------------------------------------------------------------------------------ numpy stand-ins

NUMPY_CODES = {"f8": "d", "f4": "f", "f2": "e", "i8": "q", "i4": "i", "i2": "h", "i1": "b", "u8": "Q", "u4": "I",
               "u2": "H", "u1": "B", "b1": "?"}


class NumpyDType:
    """Stand-in for ``numpy.dtype(code, align, copy)`` (+ BUILD with numpy's state tuple): numeric codes only."""

    def __init__(self, code: Any, align: Any = False, copy: Any = True):
        if isinstance(code, bytes):
            code = code.decode("latin1")
        if not isinstance(code, str) or code.lstrip("<>|=") not in NUMPY_CODES:
            raise ForbiddenError(f"unsupported numpy dtype {summary(code)} (only numeric types are allowed)")
        self.code = code.lstrip("<>|=")
        self.byteorder = ">" if code.startswith(">") else "<"

    @property
    def itemsize(self) -> int:
        return struct.calcsize(NUMPY_CODES[self.code])

    @property
    def struct_format(self) -> str:
        return self.byteorder + NUMPY_CODES[self.code]

    @property
    def numpy_str(self) -> str:
        return ("|" if self.itemsize == 1 else self.byteorder) + self.code


def numpy_dtype_build(dt: NumpyDType, state: Any, vm: SafeUnpickler) -> None:
    """BUILD on a ``NumpyDType``: numpy's state tuple ``(version, byteorder, ...)``; only the byte order is used."""
    if type(state) is not tuple or len(state) < 2:
        raise SafeLoadError("malformed numpy dtype state")
    order = state[1].decode("latin1") if isinstance(state[1], bytes) else state[1]
    if order not in ("<", ">", "|", "="):
        raise SafeLoadError(f"malformed numpy dtype byte order {summary(order)}")
    dt.byteorder = ">" if order == ">" else "<"


def numpy_scalar(dtype: Any, data: Any = None) -> Any:
    """Stand-in for ``numpy.core.multiarray.scalar(dtype, raw)``: a Python number (numpy is not imported)."""
    if isinstance(data, str):
        data = data.encode("latin1")
    if not isinstance(dtype, NumpyDType) or not isinstance(data, (bytes, bytearray)):
        raise SafeLoadError("malformed numpy scalar")
    if dtype.itemsize != len(data):
        raise SafeLoadError(f"numpy scalar of type {dtype.code} has {len(data)} bytes")
    return struct.unpack(dtype.struct_format, bytes(data))[0]


def codecs_encode(obj: Any, encoding: Any = "utf-8") -> bytes:
    """Stand-in for ``_codecs.encode(str, 'latin1')``: how protocol-2 pickles from Python 3 spell ``bytes``."""
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise ForbiddenError("refusing _codecs.encode with unexpected arguments")
    return obj.encode("latin1")
