from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetCheckpointRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Checkpoint(_message.Message):
    __slots__ = ("note", "origin", "tree_size", "root_hash")
    NOTE_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    ROOT_HASH_FIELD_NUMBER: _ClassVar[int]
    note: bytes
    origin: str
    tree_size: int
    root_hash: bytes
    def __init__(self, note: _Optional[bytes] = ..., origin: _Optional[str] = ..., tree_size: _Optional[int] = ..., root_hash: _Optional[bytes] = ...) -> None: ...

class GetInclusionProofRequest(_message.Message):
    __slots__ = ("index", "tree_size")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    index: int
    tree_size: int
    def __init__(self, index: _Optional[int] = ..., tree_size: _Optional[int] = ...) -> None: ...

class InclusionProof(_message.Message):
    __slots__ = ("index", "tree_size", "leaf", "hashes", "checkpoint", "receipt")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    LEAF_FIELD_NUMBER: _ClassVar[int]
    HASHES_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    index: int
    tree_size: int
    leaf: bytes
    hashes: _containers.RepeatedScalarFieldContainer[bytes]
    checkpoint: Checkpoint
    receipt: bytes
    def __init__(self, index: _Optional[int] = ..., tree_size: _Optional[int] = ..., leaf: _Optional[bytes] = ..., hashes: _Optional[_Iterable[bytes]] = ..., checkpoint: _Optional[_Union[Checkpoint, _Mapping]] = ..., receipt: _Optional[bytes] = ...) -> None: ...

class GetConsistencyProofRequest(_message.Message):
    __slots__ = ("old_size", "new_size")
    OLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    NEW_SIZE_FIELD_NUMBER: _ClassVar[int]
    old_size: int
    new_size: int
    def __init__(self, old_size: _Optional[int] = ..., new_size: _Optional[int] = ...) -> None: ...

class ConsistencyProof(_message.Message):
    __slots__ = ("old_size", "new_size", "hashes", "proof_file")
    OLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    NEW_SIZE_FIELD_NUMBER: _ClassVar[int]
    HASHES_FIELD_NUMBER: _ClassVar[int]
    PROOF_FILE_FIELD_NUMBER: _ClassVar[int]
    old_size: int
    new_size: int
    hashes: _containers.RepeatedScalarFieldContainer[bytes]
    proof_file: bytes
    def __init__(self, old_size: _Optional[int] = ..., new_size: _Optional[int] = ..., hashes: _Optional[_Iterable[bytes]] = ..., proof_file: _Optional[bytes] = ...) -> None: ...

class ReadJournalRequest(_message.Message):
    __slots__ = ("start_index", "vault", "page_size")
    START_INDEX_FIELD_NUMBER: _ClassVar[int]
    VAULT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    start_index: int
    vault: str
    page_size: int
    def __init__(self, start_index: _Optional[int] = ..., vault: _Optional[str] = ..., page_size: _Optional[int] = ...) -> None: ...

class JournalEntry(_message.Message):
    __slots__ = ("index", "leaf", "operation", "vault", "name", "version", "sha256", "actor", "kiosk", "time_ns", "outcome")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    LEAF_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    VAULT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    KIOSK_FIELD_NUMBER: _ClassVar[int]
    TIME_NS_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    index: int
    leaf: bytes
    operation: str
    vault: str
    name: str
    version: int
    sha256: bytes
    actor: str
    kiosk: str
    time_ns: int
    outcome: str
    def __init__(self, index: _Optional[int] = ..., leaf: _Optional[bytes] = ..., operation: _Optional[str] = ..., vault: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[int] = ..., sha256: _Optional[bytes] = ..., actor: _Optional[str] = ..., kiosk: _Optional[str] = ..., time_ns: _Optional[int] = ..., outcome: _Optional[str] = ...) -> None: ...

class ReadJournalResponse(_message.Message):
    __slots__ = ("entries", "next_index", "tree_size")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_INDEX_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[JournalEntry]
    next_index: int
    tree_size: int
    def __init__(self, entries: _Optional[_Iterable[_Union[JournalEntry, _Mapping]]] = ..., next_index: _Optional[int] = ..., tree_size: _Optional[int] = ...) -> None: ...

class GetPublicKeyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PublicKey(_message.Message):
    __slots__ = ("name", "verifier_key", "pem", "algorithm", "key_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERIFIER_KEY_FIELD_NUMBER: _ClassVar[int]
    PEM_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    verifier_key: str
    pem: bytes
    algorithm: str
    key_id: bytes
    def __init__(self, name: _Optional[str] = ..., verifier_key: _Optional[str] = ..., pem: _Optional[bytes] = ..., algorithm: _Optional[str] = ..., key_id: _Optional[bytes] = ...) -> None: ...

class GetDeliveryProofRequest(_message.Message):
    __slots__ = ("vault", "name", "version")
    VAULT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    vault: str
    name: str
    version: int
    def __init__(self, vault: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class DeliveryProof(_message.Message):
    __slots__ = ("read", "receipt", "index", "read_at_ns", "reader")
    READ_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    READ_AT_NS_FIELD_NUMBER: _ClassVar[int]
    READER_FIELD_NUMBER: _ClassVar[int]
    read: bool
    receipt: bytes
    index: int
    read_at_ns: int
    reader: str
    def __init__(self, read: _Optional[bool] = ..., receipt: _Optional[bytes] = ..., index: _Optional[int] = ..., read_at_ns: _Optional[int] = ..., reader: _Optional[str] = ...) -> None: ...

class GetReceiptRequest(_message.Message):
    __slots__ = ("vault", "name", "version", "destroyed")
    VAULT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DESTROYED_FIELD_NUMBER: _ClassVar[int]
    vault: str
    name: str
    version: int
    destroyed: bool
    def __init__(self, vault: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[int] = ..., destroyed: _Optional[bool] = ...) -> None: ...

class ReceiptFile(_message.Message):
    __slots__ = ("receipt",)
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    receipt: bytes
    def __init__(self, receipt: _Optional[bytes] = ...) -> None: ...
