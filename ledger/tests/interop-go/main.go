// Command interop-go checks a log written by the Rust `ledger` crate with Go's
// golang.org/x/mod/sumdb/tlog and golang.org/x/mod/sumdb/note, an implementation written
// independently of ours. It reads C2SP tlog-tiles tiles and entry bundles, the signed and
// cosigned checkpoint, and the proofs listed in cases.txt, and exits non-zero with a message
// naming the first check that failed.
//
// Usage: go run . <dir>
//
// <dir> holds: checkpoint (signed note), log.vkey, witnesses.vkeys (one cosignature/v1 vkey per
// line), tile/... (C2SP layout), and cases.txt with lines
//
//	root <size> <base64 root>
//	inclusion <index> <size> <base64 hash>...
//	consistency <old> <new> <base64 hash>...
package main

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "interop-go: FAIL: "+format+"\n", args...)
	os.Exit(1)
}

// c2spIndex writes a tile index as C2SP tlog-tiles path elements (x001/x234/067).
func c2spIndex(n int64) string {
	s := fmt.Sprintf("%03d", n%1000)
	for n >= 1000 {
		n /= 1000
		s = fmt.Sprintf("x%03d/%s", n%1000, s)
	}
	return s
}

// c2spTilePath maps a Go tlog.Tile (H=8) to its C2SP path. Go's own Tile.Path uses the
// sumdb layout (tile/8/L/N), not this one.
func c2spTilePath(t tlog.Tile) string {
	level := strconv.Itoa(t.L)
	if t.L == -1 {
		level = "entries"
	}
	p := "tile/" + level + "/" + c2spIndex(t.N)
	if t.W != 1<<t.H {
		p += ".p/" + strconv.Itoa(t.W)
	}
	return p
}

type dirTiles struct{ dir string }

func (d dirTiles) Height() int { return 8 }

func (d dirTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		data, err := os.ReadFile(filepath.Join(d.dir, c2spTilePath(t)))
		if err != nil {
			return nil, fmt.Errorf("tile %v: %w", t, err)
		}
		out[i] = data
	}
	return out, nil
}

func (d dirTiles) SaveTiles([]tlog.Tile, [][]byte) {}

func decodeHash(s string) tlog.Hash {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != tlog.HashSize {
		fail("bad hash %q", s)
	}
	var h tlog.Hash
	copy(h[:], b)
	return h
}

func decodeHashes(fields []string) []tlog.Hash {
	out := make([]tlog.Hash, 0, len(fields))
	for _, f := range fields {
		out = append(out, decodeHash(f))
	}
	return out
}

func atoi(s string) int64 {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		fail("bad number %q", s)
	}
	return v
}

// readEntries reads every entry of a tree of size n from the C2SP entry bundles.
func readEntries(dir string, n int64) [][]byte {
	var entries [][]byte
	for start := int64(0); start < n; start += 256 {
		w := n - start
		if w > 256 {
			w = 256
		}
		t := tlog.Tile{H: 8, L: -1, N: start / 256, W: int(w)}
		data, err := os.ReadFile(filepath.Join(dir, c2spTilePath(t)))
		if err != nil {
			fail("entry bundle: %v", err)
		}
		count := 0
		for len(data) > 0 {
			if len(data) < 2 {
				fail("entry bundle %d truncated", t.N)
			}
			l := int(binary.BigEndian.Uint16(data))
			if len(data) < 2+l {
				fail("entry bundle %d truncated", t.N)
			}
			entries = append(entries, data[2:2+l])
			data = data[2+l:]
			count++
		}
		if int64(count) != w {
			fail("entry bundle %d has %d entries, want %d", t.N, count, w)
		}
	}
	return entries
}

// checkCosignatures verifies every witness's cosignature/v1 line by hand (c2sp.org/tlog-cosignature):
// key ID = SHA-256(name || "\n" || 0x04 || key)[:4], signature = key ID || timestamp (8, BE) ||
// Ed25519 over "cosignature/v1\ntime <ts>\n" || checkpoint text.
func checkCosignatures(n *note.Note, vkeys []string) {
	for _, vkey := range vkeys {
		parts := strings.SplitN(vkey, "+", 3)
		if len(parts) != 3 {
			fail("bad witness vkey %q", vkey)
		}
		name := parts[0]
		raw, err := base64.StdEncoding.DecodeString(parts[2])
		if err != nil || len(raw) != 33 || raw[0] != 0x04 {
			fail("witness vkey %q is not a cosignature/v1 Ed25519 key", vkey)
		}
		pub := ed25519.PublicKey(raw[1:])
		sum := sha256.Sum256(append([]byte(name+"\n"), raw...))
		if hex.EncodeToString(sum[:4]) != parts[1] {
			fail("witness vkey %q: key hash does not match", vkey)
		}
		keyID := binary.BigEndian.Uint32(sum[:4])
		found := false
		for _, sig := range n.UnverifiedSigs {
			if sig.Name != name || sig.Hash != keyID {
				continue
			}
			b, err := base64.StdEncoding.DecodeString(sig.Base64)
			if err != nil || len(b) != 4+8+64 {
				fail("cosignature by %s has the wrong length", name)
			}
			ts := binary.BigEndian.Uint64(b[4:12])
			msg := fmt.Sprintf("cosignature/v1\ntime %d\n%s", ts, n.Text)
			if !ed25519.Verify(pub, []byte(msg), b[12:]) {
				fail("cosignature by %s does not verify", name)
			}
			fmt.Printf("ok cosignature by %s at time %d\n", name, ts)
			found = true
		}
		if !found {
			fail("no cosignature by witness %s", name)
		}
	}
}

func main() {
	if len(os.Args) != 2 {
		fail("usage: interop-go <dir>")
	}
	dir := os.Args[1]
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			fail("%v", err)
		}
		return b
	}

	// 1. The signed note, with Go's note package.
	verifier, err := note.NewVerifier(strings.TrimSpace(string(read("log.vkey"))))
	if err != nil {
		fail("log vkey: %v", err)
	}
	n, err := note.Open(read("checkpoint"), note.VerifierList(verifier))
	if err != nil {
		fail("note.Open of the checkpoint: %v", err)
	}
	fmt.Printf("ok checkpoint note signed by %s\n", n.Sigs[0].Name)
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 {
		fail("checkpoint text has too few lines")
	}
	size := atoi(lines[1])
	root := decodeHash(lines[2])

	// 2. Cosignatures, by hand with crypto/ed25519.
	var witnessKeys []string
	for _, l := range strings.Split(strings.TrimSpace(string(read("witnesses.vkeys"))), "\n") {
		if l != "" {
			witnessKeys = append(witnessKeys, l)
		}
	}
	checkCosignatures(n, witnessKeys)

	// 3. The tree hash from our tiles, checked against the checkpoint root. TileHashReader
	// also authenticates every tile it reads against that root.
	reader := dirTiles{dir}
	hr := tlog.TileHashReader(tlog.Tree{N: size, Hash: root}, reader)
	th, err := tlog.TreeHash(size, hr)
	if err != nil {
		fail("tlog.TreeHash(%d) from our tiles: %v", size, err)
	}
	if th != root {
		fail("tlog.TreeHash(%d) = %v, checkpoint root %v", size, th, root)
	}
	fmt.Printf("ok tlog.TreeHash(%d) from C2SP tiles matches the checkpoint root\n", size)

	// 4. Every entry in the bundles hashes to the level-0 tile hash.
	entries := readEntries(dir, size)
	for i, e := range entries {
		hs, err := hr.ReadHashes([]int64{tlog.StoredHashIndex(0, int64(i))})
		if err != nil {
			fail("reading leaf hash %d: %v", i, err)
		}
		if tlog.RecordHash(e) != hs[0] {
			fail("entry %d in the bundle does not hash to the tile's leaf hash", i)
		}
	}
	fmt.Printf("ok %d entries in bundles match the level-0 tiles\n", len(entries))

	// 5. Our proofs, with tlog.CheckRecord and tlog.CheckTree; and Go's own proofs must be
	// identical to ours.
	roots := map[int64]tlog.Hash{}
	f, err := os.Open(filepath.Join(dir, "cases.txt"))
	if err != nil {
		fail("%v", err)
	}
	defer f.Close()
	var inclusions, consistencies int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		switch fields[0] {
		case "root":
			t := atoi(fields[1])
			roots[t] = decodeHash(fields[2])
			thr := tlog.TileHashReader(tlog.Tree{N: t, Hash: roots[t]}, reader)
			got, err := tlog.TreeHash(t, thr)
			if err != nil || got != roots[t] {
				fail("tlog.TreeHash(%d) does not match our root (%v)", t, err)
			}
		case "inclusion":
			index, t := atoi(fields[1]), atoi(fields[2])
			th, ok := roots[t]
			if !ok {
				fail("no root for size %d", t)
			}
			proof := tlog.RecordProof(decodeHashes(fields[3:]))
			leaf := tlog.RecordHash(entries[index])
			if err := tlog.CheckRecord(proof, t, th, index, leaf); err != nil {
				fail("tlog.CheckRecord(index %d, size %d) rejected our proof: %v", index, t, err)
			}
			thr := tlog.TileHashReader(tlog.Tree{N: t, Hash: th}, reader)
			goProof, err := tlog.ProveRecord(t, index, thr)
			if err != nil {
				fail("tlog.ProveRecord(%d, %d): %v", t, index, err)
			}
			if len(goProof) != len(proof) {
				fail("Go's proof for %d in %d differs from ours", index, t)
			}
			for i := range proof {
				if goProof[i] != proof[i] {
					fail("Go's proof for %d in %d differs from ours at %d", index, t, i)
				}
			}
			bad := append(tlog.RecordProof(nil), proof...)
			if len(bad) > 0 {
				bad[0][0] ^= 1
				if tlog.CheckRecord(bad, t, th, index, leaf) == nil {
					fail("tlog.CheckRecord accepted a tampered proof")
				}
			}
			inclusions++
		case "consistency":
			old, t := atoi(fields[1]), atoi(fields[2])
			oh, ok1 := roots[old]
			th, ok2 := roots[t]
			if !ok1 || !ok2 {
				fail("no roots for sizes %d, %d", old, t)
			}
			proof := tlog.TreeProof(decodeHashes(fields[3:]))
			if err := tlog.CheckTree(proof, t, th, old, oh); err != nil {
				fail("tlog.CheckTree(%d -> %d) rejected our proof: %v", old, t, err)
			}
			thr := tlog.TileHashReader(tlog.Tree{N: t, Hash: th}, reader)
			goProof, err := tlog.ProveTree(t, old, thr)
			if err != nil {
				fail("tlog.ProveTree(%d, %d): %v", t, old, err)
			}
			if !bytes.Equal(flatten(goProof), flatten(proof)) {
				fail("Go's consistency proof %d -> %d differs from ours", old, t)
			}
			consistencies++
		default:
			fail("unknown case line %q", sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		fail("%v", err)
	}
	fmt.Printf("ok %d inclusion proofs (tlog.CheckRecord) and %d consistency proofs (tlog.CheckTree)\n", inclusions, consistencies)
	fmt.Println("interop-go: PASS")
}

func flatten(hs []tlog.Hash) []byte {
	var b []byte
	for _, h := range hs {
		b = append(b, h[:]...)
	}
	return b
}
