// cairn-interop: an independent check, written from docs/FORMAT.md §6.2–§6.4, §11 and §12,
// that a cairn store's log is a standard C2SP tlog-tiles log with C2SP tlog-checkpoint signed
// notes, read with Go's golang.org/x/mod/sumdb/tlog and sumdb/note and nothing of cairn's.
//
//	cairn-interop --store DIR --pubkey FILE [--checkpoint FILE]... [--proof FILE]... [--consistency FILE]...
//
// Exit 0 when every check passes (one "ok" line per check on stdout), 1 when a check fails
// (a message naming the check on stderr), 2 on a usage error (bad flags, a malformed key file,
// §6.4). scripts/ensure-go-interop.sh builds it.
//
// What it checks:
//   - origin: DIR/v1/origin is one origin (§11) and "\n";
//   - checkpoints: every DIR/v1/log/checkpoint/<size:020> and each --checkpoint file opens with
//     note.Open under note.NewEd25519VerifierKey(origin, public key); its body is exactly the
//     three lines origin, size, base64 root; a stored one's name is its size; two checkpoints
//     of one size have one root;
//   - tiles: for each checkpointed size n, tlog.TreeHash(n, tlog.TileHashReader(tree, tiles))
//     is the checkpoint's root (the reader authenticates every tile it reads against the tree);
//     tlog.ProveTree/CheckTree between each size and the largest;
//   - entries: every entry bundle of the largest size, and the right-edge partial bundle of
//     every checkpointed size, parsed as u16-prefixed entries; tlog.RecordHash of entry i is
//     the authenticated level-0 hash i; each entry is "<64 hex> <manifest name>\n" (§12.1),
//     no name twice, and the hex is SHA-256 of the first line of DIR/<name> when it exists;
//   - --proof (cairn.proof.v1, §12.4): the checkpoint note; the manifest's signature (§6.2,
//     strict) and name; store == checkpoint origin for cairn.segment.v3; log inclusion with
//     tlog.CheckRecord; the event's leaf bytes (§3) and segment inclusion with tlog.CheckRecord;
//   - --consistency (cairn.consistency.v1): both roots equal the tile-derived tree hashes and
//     tlog.CheckTree accepts the path.
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const tileHeight = 8 // §12.2: 256 hashes per full tile

// ---------------------------------------------------------------- reporting

type checkFailure struct {
	check string
	msg   string
}

func fail(check, format string, args ...any) {
	panic(checkFailure{check, fmt.Sprintf(format, args...)})
}

func must(check string, err error) {
	if err != nil {
		fail(check, "%v", err)
	}
}

func pass(check, format string, args ...any) {
	fmt.Printf("ok %s: %s\n", check, fmt.Sprintf(format, args...))
}

type usageError struct{ msg string }

func usage(format string, args ...any) {
	panic(usageError{fmt.Sprintf(format, args...)})
}

// ---------------------------------------------------------------- main

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

const usageText = "usage: cairn-interop --store DIR --pubkey FILE [--checkpoint FILE]... [--proof FILE]... [--consistency FILE]..."

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) (code int) {
	defer func() {
		switch r := recover().(type) {
		case nil:
		case checkFailure:
			fmt.Fprintf(os.Stderr, "cairn-interop: FAILED %s: %s\n", r.check, r.msg)
			code = 1
		case usageError:
			fmt.Fprintf(os.Stderr, "cairn-interop: %s\n%s\n", r.msg, usageText)
			code = 2
		default:
			panic(r)
		}
	}()

	fsFlags := flag.NewFlagSet("cairn-interop", flag.ContinueOnError)
	fsFlags.SetOutput(io.Discard)
	var store, pubkey string
	var checkpoints, proofs, consistencies multiFlag
	fsFlags.StringVar(&store, "store", "", "store root directory")
	fsFlags.StringVar(&pubkey, "pubkey", "", "cairn public key file (§6.4)")
	fsFlags.Var(&checkpoints, "checkpoint", "extra checkpoint file (repeatable)")
	fsFlags.Var(&proofs, "proof", "cairn.proof.v1 file (repeatable)")
	fsFlags.Var(&consistencies, "consistency", "cairn.consistency.v1 file (repeatable)")
	if err := fsFlags.Parse(args); err != nil {
		usage("%v", err)
	}
	if fsFlags.NArg() != 0 {
		usage("unexpected argument %q", fsFlags.Arg(0))
	}
	if store == "" || pubkey == "" {
		usage("--store and --pubkey are required")
	}
	pub := readPublicKey(pubkey)
	if st, err := os.Stat(store); err != nil || !st.IsDir() {
		usage("--store %s is not a directory", store)
	}

	v := newVerifier(store, pub)
	v.checkCheckpoints(checkpoints)
	v.checkEntries()
	for _, p := range proofs {
		v.checkProof(p)
	}
	for _, c := range consistencies {
		v.checkConsistency(c)
	}
	return 0
}

// ---------------------------------------------------------------- keys (§6.4, §6.2)

var publicKeyLine = regexp.MustCompile(`^cairn-ed25519-public:([0-9a-f]{64})\n?$`)

func readPublicKey(path string) ed25519.PublicKey {
	data, err := os.ReadFile(path)
	if err != nil {
		usage("cannot read --pubkey: %v", err)
	}
	m := publicKeyLine.FindSubmatch(data)
	if m == nil {
		if bytes.HasPrefix(data, []byte("cairn-ed25519-secret:")) {
			usage("--pubkey %s is a secret key file; give the public key", path)
		}
		usage("--pubkey %s is not a cairn public key file (cairn-ed25519-public:<64 lowercase hex>\\n, §6.4)", path)
	}
	key, _ := hex.DecodeString(string(m[1]))
	if why := strictPoint(key); why != "" {
		usage("--pubkey %s: the public key %s (§6.4)", path, why)
	}
	return ed25519.PublicKey(key)
}

func cairnKeyID(pub ed25519.PublicKey) string {
	h := sha256.Sum256(append([]byte("cairn/ed25519\n"), pub...))
	return hex.EncodeToString(h[:8])
}

// Edwards25519 arithmetic in math/big, only to apply §6.2's strict rules (canonical point
// encodings, no small-order public key or R), which crypto/ed25519.Verify does not check.
var (
	edP = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	edD = func() *big.Int {
		d := new(big.Int).ModInverse(big.NewInt(121666), edP)
		d.Mul(d, big.NewInt(-121665))
		return d.Mod(d, edP)
	}()
	edSqrtM1 = new(big.Int).Exp(big.NewInt(2), new(big.Int).Rsh(new(big.Int).Sub(edP, big.NewInt(1)), 2), edP)
)

type edPoint struct{ x, y *big.Int }

// edDecode decodes a point per RFC 8032 §5.1.3, refusing non-canonical encodings.
func edDecode(b []byte) (edPoint, bool) {
	if len(b) != 32 {
		return edPoint{}, false
	}
	le := make([]byte, 32)
	for i := range b {
		le[31-i] = b[i]
	}
	sign := uint(le[0] >> 7)
	le[0] &= 0x7f
	y := new(big.Int).SetBytes(le)
	if y.Cmp(edP) >= 0 {
		return edPoint{}, false
	}
	y2 := new(big.Int).Mul(y, y)
	u := new(big.Int).Sub(y2, big.NewInt(1))
	u.Mod(u, edP)
	w := new(big.Int).Mul(edD, y2)
	w.Add(w, big.NewInt(1)).Mod(w, edP)
	x2 := new(big.Int).Mul(u, new(big.Int).ModInverse(w, edP))
	x2.Mod(x2, edP)
	x := new(big.Int).Exp(x2, new(big.Int).Rsh(new(big.Int).Add(edP, big.NewInt(3)), 3), edP)
	sq := func(v *big.Int) *big.Int { return new(big.Int).Mod(new(big.Int).Mul(v, v), edP) }
	if sq(x).Cmp(x2) != 0 {
		x.Mul(x, edSqrtM1).Mod(x, edP)
		if sq(x).Cmp(x2) != 0 {
			return edPoint{}, false
		}
	}
	if x.Sign() == 0 && sign == 1 {
		return edPoint{}, false
	}
	if x.Bit(0) != sign {
		x.Sub(edP, x)
	}
	return edPoint{x, y}, true
}

func edAdd(a, b edPoint) edPoint {
	m := func(v ...*big.Int) *big.Int {
		r := big.NewInt(1)
		for _, f := range v {
			r.Mul(r, f).Mod(r, edP)
		}
		return r
	}
	t := m(edD, a.x, b.x, a.y, b.y)
	xn := new(big.Int).Add(m(a.x, b.y), m(a.y, b.x))
	yn := new(big.Int).Add(m(a.y, b.y), m(a.x, b.x))
	xd := new(big.Int).Add(big.NewInt(1), t)
	yd := new(big.Int).Sub(big.NewInt(1), t)
	xd.Mod(xd, edP)
	yd.Mod(yd, edP)
	return edPoint{m(xn, new(big.Int).ModInverse(xd, edP)), m(yn, new(big.Int).ModInverse(yd, edP))}
}

// strictPoint returns why b is not a canonical encoding of a point of large order, or "".
func strictPoint(b []byte) string {
	p, ok := edDecode(b)
	if !ok {
		return "is not the canonical encoding of a curve point"
	}
	for i := 0; i < 3; i++ {
		p = edAdd(p, p)
	}
	if p.x.Sign() == 0 && p.y.Cmp(big.NewInt(1)) == 0 {
		return "is a point of small order"
	}
	return ""
}

var sigLine = regexp.MustCompile(`^ed25519 ([0-9a-f]{16}) ([A-Za-z0-9+/]{86}==)$`)

// verifyManifest checks a manifest's text (§6.2): two lines, the signature line's form, its
// key id equal to the body's and to the trusted key's, and a strict RFC 8032 signature.
func verifyManifest(check, text string, pub ed25519.PublicKey, body *manifestBody) []byte {
	if !strings.HasSuffix(text, "\n") || strings.Count(text, "\n") != 2 {
		fail(check, "a manifest is exactly two lines, each ending in \\n (§6.2)")
	}
	lines := strings.SplitN(text, "\n", 3)
	bodyBytes, line := []byte(lines[0]), lines[1]
	m := sigLine.FindStringSubmatch(line)
	if m == nil {
		fail(check, "signature line %q is not `ed25519 <16 hex> <88 base64>` (§6.2)", line)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(m[2])
	if err != nil || len(sig) != 64 {
		fail(check, "signature is not canonical base64 of 64 bytes (§6.2)")
	}
	parseManifestBody(check, bodyBytes, body)
	if m[1] != body.KeyID {
		fail(check, "signature line key id %s differs from the body's key_id %s (§6.2)", m[1], body.KeyID)
	}
	if want := cairnKeyID(pub); m[1] != want {
		fail(check, "signed by unknown key %s (the --pubkey has key id %s, §6.4)", m[1], want)
	}
	if why := strictPoint(sig[:32]); why != "" {
		fail(check, "signature R %s (§6.2 strict rules)", why)
	}
	if !ed25519.Verify(pub, append([]byte("cairn-manifest-v1\n"), bodyBytes...), sig) {
		fail(check, "Ed25519 signature over \"cairn-manifest-v1\\n\" ‖ body does not verify (§6.2)")
	}
	return bodyBytes
}

// ---------------------------------------------------------------- manifests (§6.1, §11)

type manifestBody struct {
	Format string  `json:"format"`
	Store  *string `json:"store"`
	Stream struct {
		ID        string      `json:"id"`
		Partition json.Number `json:"partition"`
	} `json:"stream"`
	FirstOffset json.Number `json:"first_offset"`
	LastOffset  json.Number `json:"last_offset"`
	EventCount  json.Number `json:"event_count"`
	MerkleRoot  string      `json:"merkle_root"`
	KeyID       string      `json:"key_id"`
}

func parseManifestBody(check string, b []byte, body *manifestBody) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(body); err != nil {
		fail(check, "manifest body is not a JSON object of the §6.1 members: %v", err)
	}
	switch body.Format {
	case "cairn.segment.v1", "cairn.segment.v2":
		if body.Store != nil {
			fail(check, "a %s body has no store member (§11)", body.Format)
		}
	case "cairn.segment.v3":
		if body.Store == nil {
			fail(check, "a cairn.segment.v3 body must have a store member (§11)")
		}
	default:
		fail(check, "manifest format %q is not cairn.segment.v1/v2/v3", body.Format)
	}
}

func manifestName(check string, b *manifestBody) string {
	part := parseUint(check, "stream.partition", b.Stream.Partition, 1<<31-1)
	first := parseUint(check, "first_offset", b.FirstOffset, 1<<63-1)
	last := parseUint(check, "last_offset", b.LastOffset, 1<<63-1)
	return fmt.Sprintf("v1/streams/%s/%d/%020d-%020d.manifest", b.Stream.ID, part, first, last)
}

var (
	streamIDRe   = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)
	manifestRe   = regexp.MustCompile(`^v1/streams/([^/]+)/(0|[1-9][0-9]*)/([0-9]{20})-([0-9]{20})\.manifest$`)
	originRe     = regexp.MustCompile(`^[A-Za-z0-9._/:-]{1,255}$`)
	hex64Re      = regexp.MustCompile(`^[0-9a-f]{64}$`)
	decimalRe    = regexp.MustCompile(`^(0|[1-9][0-9]*)$`)
	checkpointRe = regexp.MustCompile(`^[0-9]{20}$`)
)

// validManifestName reports whether name is a cairn .manifest name (§2).
func validManifestName(name string) bool {
	m := manifestRe.FindStringSubmatch(name)
	if m == nil || !streamIDRe.MatchString(m[1]) || m[1] == "." || m[1] == ".." {
		return false
	}
	p, err1 := strconv.ParseUint(m[2], 10, 64)
	f, err2 := strconv.ParseUint(m[3], 10, 64)
	l, err3 := strconv.ParseUint(m[4], 10, 64)
	return err1 == nil && err2 == nil && err3 == nil && p <= 1<<31-1 && f <= 1<<63-1 && l <= 1<<63-1 && f <= l
}

func parseUint(check, what string, n json.Number, max uint64) uint64 {
	v, err := strconv.ParseUint(string(n), 10, 64)
	if err != nil || v > max || !decimalRe.MatchString(string(n)) {
		fail(check, "%s %q is not an integer in 0…%d", what, string(n), max)
	}
	return v
}

func parseHexHash(check, what, s string) tlog.Hash {
	if !hex64Re.MatchString(s) {
		fail(check, "%s %q is not 64 lowercase hex digits", what, s)
	}
	var h tlog.Hash
	hex.Decode(h[:], []byte(s))
	return h
}

func parsePath(check, what string, hs []string) []tlog.Hash {
	out := make([]tlog.Hash, len(hs))
	for i, s := range hs {
		out[i] = parseHexHash(check, fmt.Sprintf("%s[%d]", what, i), s)
	}
	return out
}

// ---------------------------------------------------------------- the store and its log

type checkpoint struct {
	source string // where it came from
	origin string
	size   int64
	root   tlog.Hash
}

type verifier struct {
	store    string
	pub      ed25519.PublicKey
	origin   string
	vkey     string
	verifier note.Verifiers
	tiles    *tileReader
	roots    map[int64]tlog.Hash // checkpointed size -> root
	largest  int64
	hrMax    tlog.HashReader // tile hash reader of the largest checkpointed tree
}

func newVerifier(store string, pub ed25519.PublicKey) *verifier {
	const check = "origin"
	data, err := os.ReadFile(filepath.Join(store, "v1", "origin"))
	must(check, err)
	s := string(data)
	origin := strings.TrimSuffix(s, "\n")
	if !strings.HasSuffix(s, "\n") || !originRe.MatchString(origin) ||
		strings.HasPrefix(origin, "/") || strings.HasSuffix(origin, "/") {
		fail(check, "v1/origin %q is not an origin followed by one \\n (§11)", s)
	}
	vkey, err := note.NewEd25519VerifierKey(origin, pub)
	must(check, err)
	nv, err := note.NewVerifier(vkey)
	must(check, err)
	pass(check, "%s; note verifier key %s", origin, vkey)
	return &verifier{
		store: store, pub: pub, origin: origin, vkey: vkey,
		verifier: note.VerifierList(nv),
		tiles:    &tileReader{store: store, cache: map[string][]byte{}},
		roots:    map[int64]tlog.Hash{},
	}
}

// openCheckpoint verifies a checkpoint note and parses its body (§12.3).
func (v *verifier) openCheckpoint(check string, text []byte) checkpoint {
	n, err := note.Open(text, v.verifier)
	if err != nil {
		var unv *note.UnverifiedNoteError
		if errors.As(err, &unv) {
			fail(check, "no signature verifies under %s (note.Open: %v)", v.vkey, err)
		}
		fail(check, "note.Open: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) != 4 || lines[3] != "" {
		fail(check, "checkpoint body has %d lines, want exactly 3 (origin, size, root)", len(lines)-1)
	}
	if lines[0] != v.origin {
		fail(check, "checkpoint origin %q is not the store's origin %q", lines[0], v.origin)
	}
	if !decimalRe.MatchString(lines[1]) {
		fail(check, "tree size %q is not decimal without leading zeros", lines[1])
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fail(check, "tree size %q: %v", lines[1], err)
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(raw) != tlog.HashSize {
		fail(check, "root %q is not standard base64 of 32 bytes", lines[2])
	}
	cp := checkpoint{origin: lines[0], size: size}
	copy(cp.root[:], raw)
	return cp
}

func (v *verifier) checkCheckpoints(extra []string) {
	var cps []checkpoint
	dir := filepath.Join(v.store, "v1", "log", "checkpoint")
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		fail("checkpoints", "%v", err)
	}
	for _, e := range ents {
		name := "v1/log/checkpoint/" + e.Name()
		check := "checkpoint " + name
		if !checkpointRe.MatchString(e.Name()) || e.IsDir() {
			fail(check, "not a checkpoint name (v1/log/checkpoint/<size:020>, §12.3)")
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		must(check, err)
		cp := v.openCheckpoint(check, data)
		if fmt.Sprintf("%020d", cp.size) != e.Name() {
			fail(check, "holds tree size %d, its name says %s", cp.size, e.Name())
		}
		cp.source = name
		cps = append(cps, cp)
		pass(check, "signed note verifies; size %d, root %s", cp.size, cp.root)
	}
	for _, f := range extra {
		check := "checkpoint " + f
		data, err := os.ReadFile(f)
		must(check, err)
		cp := v.openCheckpoint(check, data)
		cp.source = f
		cps = append(cps, cp)
		pass(check, "signed note verifies; size %d, root %s", cp.size, cp.root)
	}
	if len(cps) == 0 {
		fail("checkpoints", "the store has no checkpoint under v1/log/checkpoint/ and none was given")
	}

	for _, cp := range cps {
		if old, ok := v.roots[cp.size]; ok && old != cp.root {
			fail("checkpoint "+cp.source, "size %d has root %s, another checkpoint of that size has %s (a fork)", cp.size, cp.root, old)
		}
		v.roots[cp.size] = cp.root
		if cp.size > v.largest {
			v.largest = cp.size
		}
	}
	sizes := v.sizes()

	// Each checkpointed tree from its own tiles: TileHashReader authenticates every tile it
	// reads (the right-edge partial tiles of exactly that size) against the tree.
	for _, n := range sizes {
		check := fmt.Sprintf("tiles of size %d", n)
		if n == 0 {
			if v.roots[0] != emptyRoot() {
				fail(check, "an empty tree's root is SHA-256 of nothing")
			}
			pass(check, "empty tree")
			continue
		}
		v.tiles.used = nil
		hr := tlog.TileHashReader(tlog.Tree{N: n, Hash: v.roots[n]}, v.tiles)
		th, err := tlog.TreeHash(n, hr)
		must(check, err)
		if th != v.roots[n] {
			fail(check, "tlog.TreeHash = %s, checkpoint root %s", th, v.roots[n])
		}
		pass(check, "tlog.TreeHash over tlog.TileHashReader equals the checkpoint root (read %s)", strings.Join(v.tiles.used, ", "))
		if n == v.largest {
			v.hrMax = hr
		}
	}
	// Every smaller checkpoint is a prefix of the largest (a consistency proof built by Go
	// from the tiles and checked with CheckTree).
	for _, n := range sizes {
		if n == 0 || n == v.largest {
			continue
		}
		check := fmt.Sprintf("consistency of size %d with size %d", n, v.largest)
		p, err := tlog.ProveTree(v.largest, n, v.hrMax)
		must(check, err)
		must(check, tlog.CheckTree(p, v.largest, v.roots[v.largest], n, v.roots[n]))
		pass(check, "tlog.ProveTree from the tiles, tlog.CheckTree accepts (%d hashes)", len(p))
	}
}

func (v *verifier) sizes() []int64 {
	var s []int64
	for n := range v.roots {
		s = append(s, n)
	}
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s
}

func emptyRoot() tlog.Hash { return sha256.Sum256(nil) }

// rootAt is the tree hash of the log's first m entries, derived from the tiles of the
// largest checkpointed tree (which hold every complete subtree of any smaller size).
func (v *verifier) rootAt(check string, m int64) tlog.Hash {
	if m == 0 {
		return emptyRoot()
	}
	if m > v.largest {
		fail(check, "size %d is larger than the largest checkpoint (%d): the store's tiles do not cover it", m, v.largest)
	}
	h, err := tlog.TreeHash(m, v.hrMax)
	must(check, err)
	return h
}

// ---------------------------------------------------------------- tiles (§12.2)

// c2spIndex encodes a tile index in C2SP path form: groups of three digits, every group but
// the last prefixed with "x" (5 -> 005, 1234067 -> x001/x234/067).
func c2spIndex(n int64) string {
	s := fmt.Sprintf("%03d", n%1000)
	for n >= 1000 {
		n /= 1000
		s = fmt.Sprintf("x%03d/%s", n%1000, s)
	}
	return s
}

func tileName(level string, n int64, w int) string {
	p := "v1/log/tile/" + level + "/" + c2spIndex(n)
	if w != 1<<tileHeight {
		p += ".p/" + strconv.Itoa(w)
	}
	return p
}

type tileReader struct {
	store string // DIR
	cache map[string][]byte
	used  []string
}

func (r *tileReader) Height() int { return tileHeight }

func (r *tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		if t.H != tileHeight || t.L < 0 || t.L > 63 || t.W < 1 || t.W > 1<<tileHeight {
			return nil, fmt.Errorf("unexpected tile %+v", t)
		}
		name := tileName(strconv.Itoa(t.L), t.N, t.W)
		// Our C2SP path and Go's (tile/<H>/<L>/<N>[.p/<W>]) must name the same tile.
		if want := "v1/log/tile/" + strings.TrimPrefix(t.Path(), "tile/8/"); want != name {
			return nil, fmt.Errorf("internal: tile path %s differs from tlog's %s", name, t.Path())
		}
		data, ok := r.cache[name]
		if !ok {
			var err error
			data, err = os.ReadFile(filepath.Join(r.store, filepath.FromSlash(name)))
			if err != nil {
				return nil, fmt.Errorf("tile %s: %w", name, err)
			}
			if len(data) != t.W*tlog.HashSize {
				return nil, fmt.Errorf("tile %s is %d bytes, want %d (%d hashes)", name, len(data), t.W*tlog.HashSize, t.W)
			}
			r.cache[name] = data
		}
		r.used = append(r.used, name)
		out[i] = data
	}
	return out, nil
}

func (r *tileReader) SaveTiles([]tlog.Tile, [][]byte) {}

// readBundle reads entry bundle k of width w: w entries, each a big-endian u16 length and
// that many bytes, and nothing after them.
func (v *verifier) readBundle(check string, k int64, w int) (string, [][]byte) {
	name := tileName("entries", k, w)
	data, err := os.ReadFile(filepath.Join(v.store, filepath.FromSlash(name)))
	must(check, err)
	var entries [][]byte
	for len(data) > 0 {
		if len(data) < 2 {
			fail(check, "%s: truncated length prefix", name)
		}
		l := int(binary.BigEndian.Uint16(data))
		if len(data) < 2+l {
			fail(check, "%s: entry %d is cut short", name, len(entries))
		}
		entries = append(entries, data[2:2+l])
		data = data[2+l:]
	}
	if len(entries) != w {
		fail(check, "%s holds %d entries, want %d", name, len(entries), w)
	}
	return name, entries
}

// checkBundleHashes compares tlog.RecordHash of each entry with the authenticated level-0
// hash of its index in tree hr.
func checkBundleHashes(check, name string, hr tlog.HashReader, first int64, entries [][]byte) {
	idx := make([]int64, len(entries))
	for i := range entries {
		idx[i] = tlog.StoredHashIndex(0, first+int64(i))
	}
	hs, err := hr.ReadHashes(idx)
	must(check, err)
	for i, e := range entries {
		if tlog.RecordHash(e) != hs[i] {
			fail(check, "%s: entry %d (log index %d) %q does not hash to the level-0 tile hash", name, i, first+int64(i), e)
		}
	}
}

var entryRe = regexp.MustCompile(`^([0-9a-f]{64}) ([^\n]+)\n$`)

func (v *verifier) checkEntries() {
	n := v.largest
	if n == 0 {
		return
	}
	check := fmt.Sprintf("entries of size %d", n)
	seen := map[string]int64{}
	present := 0
	bundles := 0
	for k := int64(0); k*256 < n; k++ {
		w := int(min(256, n-k*256))
		name, entries := v.readBundle(check, k, w)
		bundles++
		checkBundleHashes(check, name, v.hrMax, k*256, entries)
		for i, e := range entries {
			idx := k*256 + int64(i)
			m := entryRe.FindSubmatch(e)
			if m == nil || !validManifestName(string(m[2])) {
				fail(check, "log index %d: %q is not `<64 hex> <manifest name>\\n` (§12.1)", idx, e)
			}
			obj := string(m[2])
			if j, dup := seen[obj]; dup {
				fail(check, "%s is in the log twice (indexes %d and %d, §12.1)", obj, j, idx)
			}
			seen[obj] = idx
			data, err := os.ReadFile(filepath.Join(v.store, filepath.FromSlash(obj)))
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			must(check, err)
			first, _, _ := bytes.Cut(data, []byte("\n"))
			sum := sha256.Sum256(first)
			if hex.EncodeToString(sum[:]) != string(m[1]) {
				fail(check, "log index %d: %s has chain hash %x, its entry says %s", idx, obj, sum, m[1])
			}
			present++
		}
	}
	pass(check, "%d entries in %d bundles hash (tlog.RecordHash) to the level-0 tile hashes; form `<hex> <name>\\n`, no name twice; %d of %d manifests present, chain hashes equal", n, bundles, present, n)

	// The right-edge partial bundle of every smaller checkpointed size.
	for _, m := range v.sizes() {
		if m == 0 || m == n || m%256 == 0 {
			continue
		}
		check := fmt.Sprintf("entries of size %d", m)
		k := m / 256
		name, entries := v.readBundle(check, k, int(m%256))
		checkBundleHashes(check, name, v.hrMax, k*256, entries)
		pass(check, "partial bundle %s matches the level-0 tile hashes", name)
	}
}

// ---------------------------------------------------------------- event proofs (§12.4, §3)

func exactKeys(check, what string, raw []byte, required, optional []string) map[string]json.RawMessage {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		fail(check, "%s is not a JSON object: %v", what, err)
	}
	allowed := map[string]bool{}
	for _, k := range required {
		allowed[k] = true
		if _, ok := m[k]; !ok {
			fail(check, "%s has no %q member", what, k)
		}
	}
	for _, k := range optional {
		allowed[k] = true
	}
	for k := range m {
		if !allowed[k] {
			fail(check, "%s has an unknown member %q", what, k)
		}
	}
	return m
}

func decodeInto(check, what string, raw json.RawMessage, v any) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		fail(check, "%s: %v", what, err)
	}
}

func isNull(raw json.RawMessage) bool { return raw == nil || string(bytes.TrimSpace(raw)) == "null" }

type leafWriter struct{ bytes.Buffer }

func (w *leafWriter) u32(v uint32) { w.Write(binary.BigEndian.AppendUint32(nil, v)) }
func (w *leafWriter) u64(v uint64) { w.Write(binary.BigEndian.AppendUint64(nil, v)) }
func (w *leafWriter) str(s string) { w.u32(uint32(len(s))); w.WriteString(s) }

// leafBytes recomputes the §3 leaf bytes of the proof's event.
func leafBytes(check string, ev json.RawMessage, streamID string, partition, offset uint64) []byte {
	m := exactKeys(check, "event", ev,
		[]string{"event_id", "occurred_at", "tenant", "actor", "action", "resource", "outcome", "source", "sensitivity"},
		[]string{"details"})
	str := func(what string, raw json.RawMessage) string {
		var s *string
		decodeInto(check, what, raw, &s)
		if s == nil {
			fail(check, "event %s is not a string", what)
		}
		return *s
	}
	actor := exactKeys(check, "event actor", m["actor"], []string{"id", "type"}, []string{"ip"})
	resource := exactKeys(check, "event resource", m["resource"], []string{"type", "id"}, nil)

	ts := str("occurred_at", m["occurred_at"])
	t, err := time.Parse("2006-01-02T15:04:05.000000Z", ts)
	if err != nil || len(ts) != 27 || t.Year() < 1 {
		fail(check, "event occurred_at %q is not a canonical timestamp YYYY-MM-DDTHH:MM:SS.ffffffZ (§0)", ts)
	}

	var w leafWriter
	w.WriteByte(0x01)
	w.str(streamID)
	w.u32(uint32(partition))
	w.u64(offset)
	w.str(str("event_id", m["event_id"]))
	w.u64(uint64(t.UnixMicro()))
	w.str(str("tenant", m["tenant"]))
	w.str(str("actor.id", actor["id"]))
	w.str(str("actor.type", actor["type"]))
	if isNull(actor["ip"]) {
		w.WriteByte(0x00)
	} else {
		w.WriteByte(0x01)
		w.str(str("actor.ip", actor["ip"]))
	}
	w.str(str("action", m["action"]))
	w.str(str("resource.type", resource["type"]))
	w.str(str("resource.id", resource["id"]))
	w.str(str("outcome", m["outcome"]))
	w.str(str("source", m["source"]))
	w.str(str("sensitivity", m["sensitivity"]))
	if isNull(m["details"]) {
		w.WriteByte(0x00)
	} else {
		kv := detailsPairs(check, m["details"])
		w.WriteByte(0x01)
		w.u32(uint32(len(kv)))
		for _, p := range kv {
			w.str(p[0])
			w.str(p[1])
		}
	}
	return w.Bytes()
}

// detailsPairs reads the details object token by token (encoding/json would silently keep
// the last of duplicate keys), refuses duplicates and sorts by key bytes (§3).
func detailsPairs(check string, raw json.RawMessage) [][2]string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		fail(check, "event details is neither null nor a JSON object")
	}
	var kv [][2]string
	seen := map[string]bool{}
	for dec.More() {
		k, err := dec.Token()
		must(check, err)
		val, err := dec.Token()
		vs, ok := val.(string)
		if err != nil || !ok {
			fail(check, "event details[%q] is not a string", k)
		}
		ks := k.(string)
		if seen[ks] {
			fail(check, "event details has the key %q twice (§3)", ks)
		}
		seen[ks] = true
		kv = append(kv, [2]string{ks, vs})
	}
	sort.Slice(kv, func(i, j int) bool { return kv[i][0] < kv[j][0] }) // Go strings compare by bytes
	return kv
}

func (v *verifier) checkProof(file string) {
	check := "proof " + file
	raw, err := os.ReadFile(file)
	must(check, err)
	m := exactKeys(check, "the proof", raw, []string{"format", "event", "stream", "offset", "leaf_index",
		"segment_path", "manifest_name", "manifest", "log_index", "log_path", "checkpoint"}, nil)
	var format, manifestText, mname, cpText string
	var stream struct {
		ID        string      `json:"id"`
		Partition json.Number `json:"partition"`
	}
	var offset, leafIndex, logIndex json.Number
	var segPath, logPath []string
	decodeInto(check, "format", m["format"], &format)
	if format != "cairn.proof.v1" {
		fail(check, "format %q is not cairn.proof.v1", format)
	}
	exactKeys(check, "stream", m["stream"], []string{"id", "partition"}, nil)
	decodeInto(check, "stream", m["stream"], &stream)
	decodeInto(check, "offset", m["offset"], &offset)
	decodeInto(check, "leaf_index", m["leaf_index"], &leafIndex)
	decodeInto(check, "log_index", m["log_index"], &logIndex)
	decodeInto(check, "segment_path", m["segment_path"], &segPath)
	decodeInto(check, "log_path", m["log_path"], &logPath)
	decodeInto(check, "manifest_name", m["manifest_name"], &mname)
	decodeInto(check, "manifest", m["manifest"], &manifestText)
	decodeInto(check, "checkpoint", m["checkpoint"], &cpText)

	// The checkpoint.
	cp := v.openCheckpoint(check+" checkpoint", []byte(cpText))
	if tiles := v.rootAt(check+" checkpoint", cp.size); tiles != cp.root {
		fail(check+" checkpoint", "root %s of size %d differs from the store's tiles (%s)", cp.root, cp.size, tiles)
	}
	pass(check+" checkpoint", "signed note verifies; size %d; root equals the store's tree hash of that size", cp.size)

	// The manifest.
	var body manifestBody
	bodyBytes := verifyManifest(check+" manifest", manifestText, v.pub, &body)
	if want := manifestName(check+" manifest", &body); mname != want {
		fail(check+" manifest", "manifest_name %q is not the body's own name %q (§2)", mname, want)
	}
	storeNote := "no store member (" + body.Format + ")"
	if body.Store != nil {
		if *body.Store != cp.origin {
			fail(check+" manifest", "body store %q is not the checkpoint origin %q (§11)", *body.Store, cp.origin)
		}
		storeNote = "store = checkpoint origin"
	}
	pass(check+" manifest", "Ed25519 signature valid (key id %s), name is the body's, %s", body.KeyID, storeNote)

	// Log inclusion.
	chain := sha256.Sum256(bodyBytes)
	entry := hex.EncodeToString(chain[:]) + " " + mname + "\n"
	li := int64(parseUint(check, "log_index", logIndex, 1<<63-1))
	lp := parsePath(check, "log_path", logPath)
	if err := tlog.CheckRecord(lp, cp.size, cp.root, li, tlog.RecordHash([]byte(entry))); err != nil {
		fail(check+" log inclusion", "tlog.CheckRecord(log_path, %d, root, %d, RecordHash(entry)): %v", cp.size, li, err)
	}
	pass(check+" log inclusion", "tlog.CheckRecord accepts entry %d of %d (%d hashes)", li, cp.size, len(lp))

	// Segment inclusion.
	if stream.ID != body.Stream.ID || stream.Partition != body.Stream.Partition {
		fail(check+" segment inclusion", "proof stream %s/%s is not the manifest's %s/%s", stream.ID, stream.Partition, body.Stream.ID, body.Stream.Partition)
	}
	part := parseUint(check, "stream.partition", stream.Partition, 1<<31-1)
	off := parseUint(check, "offset", offset, 1<<63-1)
	if off < parseUint(check, "first_offset", body.FirstOffset, 1<<63-1) || off > parseUint(check, "last_offset", body.LastOffset, 1<<63-1) {
		fail(check+" segment inclusion", "offset %d is outside the manifest's range", off)
	}
	leaf := leafBytes(check+" event", m["event"], stream.ID, part, off)
	count := int64(parseUint(check, "event_count", body.EventCount, 1<<63-1))
	root := parseHexHash(check, "merkle_root", body.MerkleRoot)
	idx := int64(parseUint(check, "leaf_index", leafIndex, 1<<63-1))
	sp := parsePath(check, "segment_path", segPath)
	if err := tlog.CheckRecord(sp, count, root, idx, tlog.RecordHash(leaf)); err != nil {
		fail(check+" segment inclusion", "tlog.CheckRecord(segment_path, %d, merkle_root, %d, RecordHash(leaf)): %v", count, idx, err)
	}
	pass(check+" segment inclusion", "leaf bytes (%d) recomputed from the event; tlog.CheckRecord accepts leaf %d of %d (%d hashes)", len(leaf), idx, count, len(sp))
}

// ---------------------------------------------------------------- consistency proofs (§12.4)

func (v *verifier) checkConsistency(file string) {
	check := "consistency " + file
	raw, err := os.ReadFile(file)
	must(check, err)
	m := exactKeys(check, "the proof", raw, []string{"format", "origin", "old_size", "old_root", "new_size", "new_root", "path"}, nil)
	var format, origin, oldRootS, newRootS string
	var oldSizeN, newSizeN json.Number
	var path []string
	decodeInto(check, "format", m["format"], &format)
	decodeInto(check, "origin", m["origin"], &origin)
	decodeInto(check, "old_size", m["old_size"], &oldSizeN)
	decodeInto(check, "new_size", m["new_size"], &newSizeN)
	decodeInto(check, "old_root", m["old_root"], &oldRootS)
	decodeInto(check, "new_root", m["new_root"], &newRootS)
	decodeInto(check, "path", m["path"], &path)
	if format != "cairn.consistency.v1" {
		fail(check, "format %q is not cairn.consistency.v1", format)
	}
	if origin != v.origin {
		fail(check, "origin %q is not the store's %q", origin, v.origin)
	}
	oldSize := int64(parseUint(check, "old_size", oldSizeN, 1<<63-1))
	newSize := int64(parseUint(check, "new_size", newSizeN, 1<<63-1))
	oldRoot := parseHexHash(check, "old_root", oldRootS)
	newRoot := parseHexHash(check, "new_root", newRootS)
	p := parsePath(check, "path", path)
	if !(0 < oldSize && oldSize <= newSize) {
		fail(check, "sizes must satisfy 0 < old_size ≤ new_size (%d, %d)", oldSize, newSize)
	}
	if h := v.rootAt(check, oldSize); h != oldRoot {
		fail(check, "old_root %s differs from the tree hash of size %d from the tiles (%s)", oldRoot, oldSize, h)
	}
	if h := v.rootAt(check, newSize); h != newRoot {
		fail(check, "new_root %s differs from the tree hash of size %d from the tiles (%s)", newRoot, newSize, h)
	}
	if err := tlog.CheckTree(p, newSize, newRoot, oldSize, oldRoot); err != nil {
		fail(check, "tlog.CheckTree(path, %d, new_root, %d, old_root): %v", newSize, oldSize, err)
	}
	pass(check, "roots equal the tile-derived tree hashes; tlog.CheckTree accepts %d → %d (%d hashes)", oldSize, newSize, len(p))
}
