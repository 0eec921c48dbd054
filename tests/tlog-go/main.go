// Command tlog-verify checks, with Go's own implementations (golang.org/x/mod/sumdb/note and
// golang.org/x/mod/sumdb/tlog), the files the Rust code in src/tlog writes: two signed
// checkpoints, a C2SP tiles directory and a proof bundle. tests/tlog_go.rs runs it on a
// log it generates, then on tampered copies, each of which must fail.
//
//	tlog-verify -vkey VKEY -dir TILES -new CHECKPOINT [-old CHECKPOINT] [-bundle BUNDLE.json]
//	tlog-verify -vkey VKEY -bundle BUNDLE.json      (a proof bundle alone, as an auditor has it)
//
// Exit status 0 when every check passes; 1 and a FAIL line naming the check otherwise.
package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// checkpoint is a C2SP tlog-checkpoint body.
type checkpoint struct {
	origin string
	tree   tlog.Tree
}

// openCheckpoint verifies a signed note and parses its body.
func openCheckpoint(msg []byte, verifiers note.Verifiers) (checkpoint, error) {
	n, err := note.Open(msg, verifiers)
	if err != nil {
		return checkpoint{}, fmt.Errorf("note signature: %w", err)
	}
	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	if len(lines) < 3 || lines[0] == "" {
		return checkpoint{}, errors.New("checkpoint body has fewer than three lines")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || (lines[1] != "0" && strings.HasPrefix(lines[1], "0")) {
		return checkpoint{}, fmt.Errorf("bad tree size %q", lines[1])
	}
	h, err := tlog.ParseHash(lines[2])
	if err != nil {
		return checkpoint{}, fmt.Errorf("bad root hash: %w", err)
	}
	return checkpoint{origin: lines[0], tree: tlog.Tree{N: size, Hash: h}}, nil
}

// tileIndex encodes N as C2SP path elements: 3 digits each, all but the last with an x.
func tileIndex(n int64) string {
	s := fmt.Sprintf("%03d", n%1000)
	for n /= 1000; n > 0; n /= 1000 {
		s = fmt.Sprintf("x%03d/%s", n%1000, s)
	}
	return s
}

// c2spPath maps a Go tile (height 8) to its C2SP path: tile/<L>/<N>[.p/<W>], entries for data.
func c2spPath(t tlog.Tile) string {
	level := strconv.Itoa(t.L)
	if t.L < 0 {
		level = "entries"
	}
	p := "tile/" + level + "/" + tileIndex(t.N)
	if t.W < 1<<t.H {
		p += ".p/" + strconv.Itoa(t.W)
	}
	return p
}

// dirTiles is a tlog.TileReader over a C2SP tiles directory.
type dirTiles struct{ dir string }

func (d dirTiles) Height() int { return 8 }

func (d dirTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		data, err := os.ReadFile(filepath.Join(d.dir, c2spPath(t)))
		if err != nil && t.W < 1<<t.H {
			// C2SP: a partial tile may be gone once its full tile exists; use its prefix.
			full := t
			full.W = 1 << t.H
			if data, err = os.ReadFile(filepath.Join(d.dir, c2spPath(full))); err == nil && len(data) >= t.W*tlog.HashSize {
				data = data[:t.W*tlog.HashSize]
			}
		}
		if err != nil {
			return nil, err
		}
		out[i] = data
	}
	return out, nil
}

func (d dirTiles) SaveTiles([]tlog.Tile, [][]byte) {}

// entries reads the entry bundles of a tree of size n (big-endian uint16 length prefixes).
func entries(dir string, n int64) ([][]byte, error) {
	var out [][]byte
	for k := int64(0); k*256 < n; k++ {
		w := int(min(256, n-k*256))
		t := tlog.Tile{H: 8, L: -1, N: k, W: w}
		data, err := os.ReadFile(filepath.Join(dir, c2spPath(t)))
		if err != nil {
			return nil, err
		}
		var got [][]byte
		for len(data) > 0 {
			if len(data) < 2 {
				return nil, fmt.Errorf("%s: truncated length", c2spPath(t))
			}
			l := int(data[0])<<8 | int(data[1])
			if len(data) < 2+l {
				return nil, fmt.Errorf("%s: truncated entry", c2spPath(t))
			}
			got, data = append(got, data[2:2+l]), data[2+l:]
		}
		if len(got) != w {
			return nil, fmt.Errorf("%s holds %d entries, not %d", c2spPath(t), len(got), w)
		}
		out = append(out, got...)
	}
	return out, nil
}

// bundle is the proof bundle written by src/tlog/bundle.rs.
type bundle struct {
	Format         string   `json:"format"`
	Index          int64    `json:"index"`
	Record         string   `json:"record"`
	InclusionProof []string `json:"inclusion_proof"`
	Checkpoint     string   `json:"checkpoint"`
}

// parseTlogProof reads a C2SP tlog-proof@v1 (c2sp.org/tlog-proof) written from its
// specification: the first line, an `extra` line (bucket's record), `index N`, one base64
// hash per line, an empty line, the checkpoint verbatim.
func parseTlogProof(text string) (bundle, error) {
	var b bundle
	proof, cp, ok := strings.Cut(text, "\n\n")
	if !ok {
		return b, errors.New("no empty line before the checkpoint")
	}
	lines := strings.Split(proof, "\n")
	if lines[0] != "c2sp.org/tlog-proof@v1" {
		return b, fmt.Errorf("first line %q", lines[0])
	}
	lines = lines[1:]
	if len(lines) > 0 && strings.HasPrefix(lines[0], "extra ") {
		b.Record = strings.TrimPrefix(lines[0], "extra ")
		lines = lines[1:]
	} else {
		return b, errors.New("no extra line: the record is missing")
	}
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "index ") {
		return b, errors.New("no index line")
	}
	idx := strings.TrimPrefix(lines[0], "index ")
	n, err := strconv.ParseInt(idx, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != idx {
		return b, fmt.Errorf("index %q", idx)
	}
	b.Format, b.Index, b.InclusionProof, b.Checkpoint = "c2sp.org/tlog-proof@v1", n, lines[1:], cp
	return b, nil
}

func run() error {
	vkey := flag.String("vkey", "", "verifier key: name+keyid+base64(0x01||pubkey)")
	dir := flag.String("dir", "", "C2SP tiles directory of the newer checkpoint's log")
	newPath := flag.String("new", "", "newer signed checkpoint")
	oldPath := flag.String("old", "", "older signed checkpoint (consistency is checked)")
	bundlePath := flag.String("bundle", "", "proof bundle: JSON, or a C2SP tlog-proof")
	flag.Parse()

	v, err := note.NewVerifier(*vkey)
	if err != nil {
		return fmt.Errorf("verifier key: %w", err)
	}
	verifiers := note.VerifierList(v)
	read := func(p string) ([]byte, error) { return os.ReadFile(p) }

	if *newPath == "" {
		if *bundlePath == "" {
			return errors.New("nothing to check: give -new (with -dir) or -bundle")
		}
		return checkBundle(*bundlePath, verifiers, checkpoint{}, nil)
	}
	msg, err := read(*newPath)
	if err != nil {
		return err
	}
	cur, err := openCheckpoint(msg, verifiers)
	if err != nil {
		return fmt.Errorf("new checkpoint: %w", err)
	}
	fmt.Printf("ok: new checkpoint signed by %s, %s size %d\n", v.Name(), cur.origin, cur.tree.N)

	tiles := dirTiles{*dir}
	r := tlog.TileHashReader(cur.tree, tiles)
	th, err := tlog.TreeHash(cur.tree.N, r)
	if err != nil {
		return fmt.Errorf("tree hash from tiles: %w", err)
	}
	if th != cur.tree.Hash {
		return errors.New("tree hash from tiles differs from the checkpoint")
	}
	fmt.Println("ok: tree hash from tiles equals the checkpoint's root")

	recs, err := entries(*dir, cur.tree.N)
	if err != nil {
		return fmt.Errorf("entry bundles: %w", err)
	}
	idx := make([]int64, len(recs))
	for i := range recs {
		idx[i] = tlog.StoredHashIndex(0, int64(i))
	}
	leaves, err := r.ReadHashes(idx)
	if err != nil {
		return fmt.Errorf("leaf hashes: %w", err)
	}
	for i, rec := range recs {
		if tlog.RecordHash(rec) != leaves[i] {
			return fmt.Errorf("entry %d does not hash to its leaf in the tiles", i)
		}
	}
	fmt.Printf("ok: %d entries hash to the tiles' leaves\n", len(recs))

	if *oldPath != "" {
		msg, err := read(*oldPath)
		if err != nil {
			return err
		}
		old, err := openCheckpoint(msg, verifiers)
		if err != nil {
			return fmt.Errorf("old checkpoint: %w", err)
		}
		if old.origin != cur.origin {
			return fmt.Errorf("old checkpoint is of another log (%s)", old.origin)
		}
		p, err := tlog.ProveTree(cur.tree.N, old.tree.N, r)
		if err != nil {
			return fmt.Errorf("consistency proof: %w", err)
		}
		if err := tlog.CheckTree(p, cur.tree.N, cur.tree.Hash, old.tree.N, old.tree.Hash); err != nil {
			return fmt.Errorf("checkpoint %d is not consistent with checkpoint %d: %w", cur.tree.N, old.tree.N, err)
		}
		oh, err := tlog.TreeHash(old.tree.N, tlog.TileHashReader(old.tree, tiles))
		if err != nil || oh != old.tree.Hash {
			return fmt.Errorf("old tree hash from its partial tiles: %v", err)
		}
		fmt.Printf("ok: checkpoint %d is consistent with checkpoint %d (%d-hash proof)\n", cur.tree.N, old.tree.N, len(p))
	}

	if *bundlePath != "" {
		return checkBundle(*bundlePath, verifiers, cur, r)
	}
	return nil
}

// checkBundle checks a proof bundle; with the tiles of the same tree (r != nil) it also
// compares the bundle's proof with Go's ProveRecord.
func checkBundle(path string, verifiers note.Verifiers, cur checkpoint, r tlog.HashReader) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var b bundle
	if strings.HasPrefix(string(raw), "c2sp.org/tlog-proof@") {
		if b, err = parseTlogProof(string(raw)); err != nil {
			return fmt.Errorf("tlog-proof: %w", err)
		}
	} else if err := json.Unmarshal(raw, &b); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	bc, err := openCheckpoint([]byte(b.Checkpoint), verifiers)
	if err != nil {
		return fmt.Errorf("bundle checkpoint: %w", err)
	}
	rec, err := base64.StdEncoding.DecodeString(b.Record)
	if err != nil {
		return fmt.Errorf("bundle record: %w", err)
	}
	proof := make(tlog.RecordProof, len(b.InclusionProof))
	for i, s := range b.InclusionProof {
		if proof[i], err = tlog.ParseHash(s); err != nil {
			return fmt.Errorf("bundle proof hash %d: %w", i, err)
		}
	}
	if err := tlog.CheckRecord(proof, bc.tree.N, bc.tree.Hash, b.Index, tlog.RecordHash(rec)); err != nil {
		return fmt.Errorf("bundle: record %d is not in the tree of size %d: %w", b.Index, bc.tree.N, err)
	}
	if r != nil && bc.tree == cur.tree {
		gp, err := tlog.ProveRecord(cur.tree.N, b.Index, r)
		if err != nil {
			return fmt.Errorf("ProveRecord: %w", err)
		}
		if fmt.Sprint(gp) != fmt.Sprint(proof) {
			return errors.New("bundle proof differs from Go's ProveRecord over the tiles")
		}
	}
	fmt.Printf("ok: bundle proves record %d in %s size %d\n", b.Index, bc.origin, bc.tree.N)
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Println("FAIL:", err)
		os.Exit(1)
	}
}
