//! The RC4 stream cipher, as MSE uses it (key from SHA-1, the first 1024
//! keystream bytes discarded by the caller with [`Rc4::discard`]).

/// RC4 state: the permutation and the two indices.
#[derive(Clone)]
pub struct Rc4 {
    s: [u8; 256],
    i: u8,
    j: u8,
}

impl Rc4 {
    /// Key scheduling. Panics on an empty key or one over 256 bytes (the
    /// key lengths RC4 defines); MSE keys are always 20 bytes.
    pub fn new(key: &[u8]) -> Rc4 {
        assert!(
            !key.is_empty() && key.len() <= 256,
            "RC4 key length {}",
            key.len()
        );
        let mut s = [0u8; 256];
        for (i, v) in s.iter_mut().enumerate() {
            *v = i as u8;
        }
        let mut j = 0u8;
        for i in 0..256 {
            j = j.wrapping_add(s[i]).wrapping_add(key[i % key.len()]);
            s.swap(i, j as usize);
        }
        Rc4 { s, i: 0, j: 0 }
    }

    fn next_byte(&mut self) -> u8 {
        self.i = self.i.wrapping_add(1);
        let si = self.s[self.i as usize];
        self.j = self.j.wrapping_add(si);
        self.s.swap(self.i as usize, self.j as usize);
        self.s[(self.s[self.i as usize].wrapping_add(self.s[self.j as usize])) as usize]
    }

    /// XORs the keystream into `buf` (encrypting and decrypting are the same).
    pub fn apply(&mut self, buf: &mut [u8]) {
        // The indices in locals: this loop carries the whole encrypted stream.
        let (mut i, mut j) = (self.i, self.j);
        let s = &mut self.s;
        for b in buf {
            i = i.wrapping_add(1);
            let si = s[i as usize];
            j = j.wrapping_add(si);
            let sj = s[j as usize];
            s[i as usize] = sj;
            s[j as usize] = si;
            *b ^= s[si.wrapping_add(sj) as usize];
        }
        self.i = i;
        self.j = j;
    }

    /// Skips `n` keystream bytes.
    pub fn discard(&mut self, n: usize) {
        for _ in 0..n {
            self.next_byte();
        }
    }
}

impl std::fmt::Debug for Rc4 {
    // The state is key material: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rc4 { .. }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Checks the 16 keystream bytes at each `(offset, hex)` row of an
    /// RFC 6229 table.
    fn check_rows(key: &[u8], rows: &[(usize, &str)]) {
        let mut cipher = Rc4::new(key);
        let mut pos = 0;
        for &(offset, want) in rows {
            cipher.discard(offset - pos);
            let mut block = [0u8; 16];
            cipher.apply(&mut block);
            pos = offset + 16;
            assert_eq!(block.to_vec(), hex(want), "key {key:02x?} offset {offset}");
        }
    }

    #[test]
    fn rfc6229_40_bit_key() {
        check_rows(
            &hex("0102030405"),
            &[
                (0, "b2396305f03dc027ccc3524a0a1118a8"),
                (16, "6982944f18fc82d589c403a47a0d0919"),
                (240, "28cb1132c96ce286421dcaadb8b69eae"),
                (256, "1cfcf62b03eddb641d77dfcf7f8d8c93"),
                (496, "42b7d0cdd918a8a33dd51781c81f4041"),
                (512, "6459844432a7da923cfb3eb4980661f6"),
                (752, "ec10327bde2beefd18f9277680457e22"),
                (768, "eb62638d4f0ba1fe9fca20e05bf8ff2b"),
                (1008, "45129048e6a0ed0b56b490338f078da5"),
                (1024, "30abbcc7c20b01609f23ee2d5f6bb7df"),
                (1520, "3294f744d8f9790507e70f62e5bbceea"),
                (1536, "d8729db41882259bee4f825325f5a130"),
                (2032, "1eb14a0c13b3bf47fa2a0ba93ad45b8b"),
                (2048, "cc582f8ba9f265e2b1be9112e975d2d7"),
                (3056, "f2e30f9bd102ecbf75aaade9bc35c43c"),
                (3072, "ec0e11c479dc329dc8da7968fe965681"),
                (4080, "068326a2118416d21f9d04b2cd1ca050"),
                (4096, "ff25b58995996707e51fbdf08b34d875"),
            ],
        );
    }

    #[test]
    fn rfc6229_64_bit_key() {
        check_rows(
            &hex("0102030405060708"),
            &[
                (0, "97ab8a1bf0afb96132f2f67258da15a8"),
                (16, "8263efdb45c4a18684ef87e6b19e5b09"),
                (240, "9636ebc9841926f4f7d1f362bddf6e18"),
                (256, "d0a990ff2c05fef5b90373c9ff4b870a"),
                (496, "73239f1db7f41d80b643c0c52518ec63"),
                (512, "163b319923a6bdb4527c626126703c0f"),
                (752, "49d6c8af0f97144a87df21d91472f966"),
                (768, "44173a103b6616c5d5ad1cee40c863d0"),
                (1008, "273c9c4b27f322e4e716ef53a47de7a4"),
                (1024, "c6d0e7b226259fa9023490b26167ad1d"),
                (1520, "1fe8986713f07c3d9ae1c163ff8cf9d3"),
                (1536, "8369e1a965610be887fbd0c79162aafb"),
                (2032, "0a0127abb44484b9fbef5abcae1b579f"),
                (2048, "c2cdadc6402e8ee866e1f37bdb47e42c"),
                (3056, "26b51ea37df8e1d6f76fc3b66a7429b3"),
                (3072, "bc7683205d4f443dc1f29dda3315c87b"),
                (4080, "d5fa5a3469d29aaaf83d23589db8c85b"),
                (4096, "3fb46e2c8f0f068edce8cdcd7dfc5862"),
            ],
        );
    }

    #[test]
    fn rfc6229_128_bit_key() {
        check_rows(
            &hex("0102030405060708090a0b0c0d0e0f10"),
            &[
                (0, "9ac7cc9a609d1ef7b2932899cde41b97"),
                (16, "5248c4959014126a6e8a84f11d1a9e1c"),
                (240, "065902e4b620f6cc36c8589f66432f2b"),
                (256, "d39d566bc6bce3010768151549f3873f"),
                (496, "b6d1e6c4a5e4771cad79538df295fb11"),
                (512, "c68c1d5c559a974123df1dbc52a43b89"),
                (752, "c5ecf88de897fd57fed301701b82a259"),
                (768, "eccbe13de1fcc91c11a0b26c0bc8fa4d"),
                (1008, "e7a72574f8782ae26aabcf9ebcd66065"),
                (1024, "bdf0324e6083dcc6d3cedd3ca8c53c16"),
                (1520, "b40110c4190b5622a96116b0017ed297"),
                (1536, "ffa0b514647ec04f6306b892ae661181"),
                (2032, "d03d1bc03cd33d70dff9fa5d71963ebd"),
                (2048, "8a44126411eaa78bd51e8d87a8879bf5"),
                (3056, "fabeb76028ade2d0e48722e46c4615a3"),
                (3072, "c05d88abd50357f935a63c59ee537623"),
                (4080, "ff38265c1642c1abe8d3c2fe5e572bf8"),
                (4096, "a36a4c301ae8ac13610ccbc12256cacc"),
            ],
        );
    }

    #[test]
    fn rfc6229_256_bit_key() {
        check_rows(
            &hex("0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"),
            &[
                (0, "eaa6bd25880bf93d3f5d1e4ca2611d91"),
                (16, "cfa45c9f7e714b54bdfa80027cb14380"),
                (240, "114ae344ded71b35f2e60febad727fd8"),
                (256, "02e1e7056b0f623900496422943e97b6"),
                (496, "91cb93c787964e10d9527d999c6f936b"),
                (512, "49b18b42f8e8367cbeb5ef104ba1c7cd"),
                (752, "87084b3ba700bade955610672745b374"),
                (768, "e7a7b9e9ec540d5ff43bdb12792d1b35"),
                (1008, "c799b596738f6b018c76c74b1759bd90"),
                (1024, "7fec5bfd9f9b89ce6548309092d7e958"),
                (1520, "40f250b26d1f096a4afd4c340a588815"),
                (1536, "3e34135c79db010200767651cf263073"),
                (2032, "f656abccf88dd827027b2ce917d464ec"),
                (2048, "18b62503bfbc077fbabb98f20d98ab34"),
                (3056, "8aed95ee5b0dcbfbef4eb21d3a3f52f9"),
                (3072, "625a1ab00ee39a5327346bddb01a9c18"),
                (4080, "a13a7c79c7e119b5ab0296ab28c300b9"),
                (4096, "f3e4c0a2e02d1d01f7f0a74618af2b48"),
            ],
        );
    }

    #[test]
    fn apply_is_its_own_inverse_across_calls() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut enc = Rc4::new(b"a key");
        let mut buf = data.clone();
        enc.apply(&mut buf[..333]);
        enc.apply(&mut buf[333..]);
        let mut dec = Rc4::new(b"a key");
        dec.apply(&mut buf);
        assert_eq!(buf, data);
    }
}
