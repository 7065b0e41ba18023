//! Bencode (BEP 3).
