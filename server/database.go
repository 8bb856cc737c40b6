package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/runtime"
	"github.com/spacetime-go/spacetime/server/subscription"
	"github.com/spacetime-go/spacetime/store"
)

// Metadata keys the server keeps in each store database (store.Database.SetMeta),
// so that a restart serves exactly what was published, owned by whom.
const (
	metaModule      = "server.module"
	metaModuleHash  = "server.module_hash"
	metaOwner       = "server.owner"
	metaPublishedAt = "server.published_at"
)

// database is one served database: the runtime's Database, its owner and
// module, its subscription engine and its WebSocket connections.
type database struct {
	s    *Server
	name string
	rdb  *runtime.Database
	subs *subscriptions

	mu          sync.RWMutex
	owner       abi.Identity
	moduleHash  string
	publishedAt time.Time

	cancelCommits func()
	// limits are the database's own limits, the server's filled in.
	limits DatabaseLimits

	connMu sync.Mutex
	conns  map[abi.ConnectionID]*wsConn
	connWG sync.WaitGroup
	closed bool
}

// info is what GET /v1/database lists.
type dbInfo struct {
	Name        string       `json:"name"`
	Owner       abi.Identity `json:"owner"`
	ModuleHash  string       `json:"module_hash"`
	PublishedAt time.Time    `json:"published_at"`
}

func (d *database) info() dbInfo {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return dbInfo{Name: d.name, Owner: d.owner, ModuleHash: d.moduleHash, PublishedAt: d.publishedAt}
}

func (d *database) def() *abi.ModuleDef { return d.rdb.Module().Def() }

func (d *database) isOwner(p principal) bool {
	if p.Operator.IsZero() {
		return false
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	return p.Operator == d.owner
}

// newDatabase wraps a runtime database and starts what serves it.
func (s *Server) newDatabase(rdb *runtime.Database, owner abi.Identity, hash string, at time.Time) *database {
	d := &database{s: s, name: rdb.Name(), rdb: rdb, owner: owner, moduleHash: hash, publishedAt: at, conns: map[abi.ConnectionID]*wsConn{}}
	d.limits = s.limitsFor(d.name)
	rdb.Logs().SetBytesPerMinute(d.limits.LogBytesPerMinute)
	if own, ok := s.cfg.dbLimits[d.name]; ok {
		s.log.Info("database has its own limits", "database", d.name, "limits", own.String())
	}
	name := d.name
	d.cancelCommits = rdb.Store().OnCommit(func(c store.Commit, _ *store.Snapshot) {
		s.metrics.commits.WithLabelValues(name).Inc()
	})
	d.subs = newSubscriptions(d)
	return d
}

// close stops serving the database; the store database stays.
func (d *database) close(ctx context.Context) {
	d.closeConnections(websocketGoingAway, "database closed")
	d.waitConnections(ctx)
	d.subs.close()
	d.cancelCommits()
	d.rdb.Close(ctx)
	d.rdb.Logs().Close()
}

// closeConnections closes every WebSocket of the database with a reason and
// refuses new ones.
func (d *database) closeConnections(code int, reason string) {
	d.connMu.Lock()
	d.closed = true
	conns := make([]*wsConn, 0, len(d.conns))
	for _, c := range d.conns {
		conns = append(conns, c)
	}
	d.connMu.Unlock()
	for _, c := range conns {
		c.closeWith(code, reason)
	}
}

// waitConnections waits until every connection's handler has finished
// (client_disconnected included), or ctx is done.
func (d *database) waitConnections(ctx context.Context) {
	done := make(chan struct{})
	go func() { d.connWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// register adds a connection, or says why it cannot: the database is
// closing, or has as many connections as it may.
func (d *database) register(c *wsConn) (code int, reason string) {
	d.connMu.Lock()
	defer d.connMu.Unlock()
	if d.closed {
		return websocketGoingAway, "database closing"
	}
	if len(d.conns) >= d.limits.MaxConnections {
		return websocket.CloseTryAgainLater, fmt.Sprintf("too many connections: database %s has its limit of %d open", d.name, d.limits.MaxConnections)
	}
	d.conns[c.id] = c
	d.connWG.Add(1)
	return 0, ""
}

func (d *database) unregister(c *wsConn) {
	d.connMu.Lock()
	defer d.connMu.Unlock()
	if _, ok := d.conns[c.id]; ok {
		delete(d.conns, c.id)
		d.connWG.Done()
	}
}

// reopenDatabases serves every database of the store with the module kept in
// its metadata. A database whose module no longer loads is skipped with an
// error in the log rather than keeping the whole server down: its data stays,
// and publishing a module again serves it.
func (s *Server) reopenDatabases(ctx context.Context) error {
	for _, name := range s.st.Databases() {
		sdb, err := s.st.Database(name)
		if err != nil {
			return fmt.Errorf("server: opening database %s: %w", name, err)
		}
		wasm, err := loadModule(sdb)
		if err != nil {
			s.log.Error("database's module cannot be read: skipped; publish a module to it again", "database", name, "error", err)
			continue
		}
		start := time.Now()
		mod, err := s.rt.Compile(ctx, wasm)
		if err != nil {
			s.log.Error("database's module no longer loads: skipped; publish a module to it again", "database", name, "error", err)
			continue
		}
		v, err := s.verifierFor(name)
		if err != nil {
			return err
		}
		rdb, err := s.rt.OpenDatabase(ctx, s.st, name, mod, s.runtimeOptions(name, v)...)
		if err != nil {
			s.log.Error("database could not be opened: skipped", "database", name, "error", err)
			continue
		}
		var owner abi.Identity
		if b, ok := sdb.Meta(metaOwner); ok {
			if err := owner.UnmarshalText(b); err != nil {
				s.log.Error("database has an unreadable owner; only a new owner can be set by deleting it", "database", name, "error", err)
			}
		}
		var at time.Time
		if b, ok := sdb.Meta(metaPublishedAt); ok {
			at, _ = time.Parse(time.RFC3339Nano, string(b))
		}
		s.dbs[name] = s.newDatabase(rdb, owner, mod.Hash(), at)
		s.log.Info("database reopened", "database", name, "module_hash", mod.Hash(), "took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// publishResult is the answer to PUT /v1/database/:name.
type publishResult struct {
	Database    string    `json:"database"`
	ModuleHash  string    `json:"module_hash"`
	Created     bool      `json:"created"`
	PublishedAt time.Time `json:"published_at"`
	// AddedTables lists the tables a republish added.
	AddedTables []string `json:"added_tables,omitempty"`
	// KeptTables lists the tables the database has that the new module no
	// longer declares: their rows are kept (a module that declares them
	// again finds them), but no reducer or client reaches them.
	KeptTables []string `json:"kept_tables,omitempty"`
	// CompileMS is how long validating and compiling took.
	CompileMS int64 `json:"compile_ms"`
}

var (
	errNotOwner      = errors.New("not the owner")
	errNoSuchDB      = errors.New("no such database")
	errSchemaRefused = errors.New("incompatible module")
)

// publish creates name with wasm, or hot-swaps its module.
func (s *Server) publish(ctx context.Context, name string, owner abi.Identity, wasm []byte) (*publishResult, error) {
	s.publishMu.Lock()
	defer s.publishMu.Unlock()

	d, exists := s.lookup(name)
	if exists && !d.isOwner(principal{Operator: owner}) {
		return nil, fmt.Errorf("%w: database %s belongs to another identity; publish under another name, or use the owner's token", errNotOwner, name)
	}
	mod, err := s.rt.Compile(ctx, wasm)
	if err != nil {
		return nil, err
	}
	// Grants are enforced by the subscription engine; a rule it cannot
	// compile would leave its table closed, so refuse it here, where the
	// publisher sees where it is.
	if err := subscription.CheckGrants(mod.Def()); err != nil {
		return nil, fmt.Errorf("%w: grant_access: %w", runtime.ErrInvalidModule, err)
	}
	now := time.Now().UTC()
	res := &publishResult{Database: name, ModuleHash: mod.Hash(), PublishedAt: now, CompileMS: mod.CompileTime().Milliseconds()}
	if exists {
		before := map[string]bool{}
		for _, t := range d.rdb.Store().Tables() {
			before[t.Name] = true
		}
		if err := d.rdb.Update(ctx, mod); err != nil {
			if errors.Is(err, runtime.ErrSchemaChange) {
				return nil, fmt.Errorf("%w: %w", errSchemaRefused, err)
			}
			return nil, err
		}
		declared := map[string]bool{}
		for _, t := range mod.Def().Tables {
			declared[t.Name] = true
			if !before[t.Name] {
				res.AddedTables = append(res.AddedTables, t.Name)
			}
		}
		for _, t := range d.rdb.Store().Tables() {
			if !declared[t.Name] {
				res.KeptTables = append(res.KeptTables, t.Name)
			}
		}
		if len(res.KeptTables) > 0 {
			s.log.Warn("the new module no longer declares tables; their rows are kept but unreachable", "database", name, "tables", res.KeptTables)
		}
		if err := setMeta(ctx, d.rdb.Store(), wasm, mod.Hash(), owner, now); err != nil {
			return nil, err
		}
		d.mu.Lock()
		d.moduleHash, d.publishedAt = mod.Hash(), now
		d.mu.Unlock()
		d.subs.moduleChanged()
		s.log.Info("database updated", "database", name, "module_hash", mod.Hash(), "added_tables", res.AddedTables)
		return res, nil
	}

	v, err := s.verifierFor(name)
	if err != nil {
		return nil, err
	}
	rdb, err := s.rt.CreateDatabase(ctx, s.st, name, mod, s.runtimeOptions(name, v)...)
	if errors.Is(err, store.ErrDatabaseExists) {
		// In the store but not served: its module could not be read back
		// at start (an interrupted first publish). Serve it with this one.
		s.log.Warn("publishing to a database that had no readable module: keeping its data", "database", name)
		rdb, err = s.rt.OpenDatabase(ctx, s.st, name, mod, s.runtimeOptions(name, v)...)
		if errors.Is(err, runtime.ErrSchemaChange) {
			return nil, fmt.Errorf("%w: %w", errSchemaRefused, err)
		}
	}
	if err != nil {
		return nil, err
	}
	if err := setMeta(ctx, rdb.Store(), wasm, mod.Hash(), owner, now); err != nil {
		// Without its module the database could not be reopened: undo.
		rdb.Close(ctx)
		s.st.DropDatabase(context.WithoutCancel(ctx), name)
		return nil, err
	}
	d = s.newDatabase(rdb, owner, mod.Hash(), now)
	s.mu.Lock()
	s.dbs[name] = d
	s.mu.Unlock()
	res.Created = true
	s.log.Info("database created", "database", name, "module_hash", mod.Hash(), "owner", owner)
	return res, nil
}

// moduleChunk is the size of one piece of a module binary in the store's
// metadata: one metadata write is one atomic Badger commit, which holds about
// 1.2 MB (store.ErrTxTooLarge), and a Go module is 2–4 MB.
const moduleChunk = 512 << 10

// setMeta records a published module. The binary goes into the slot ("a" or
// "b") the database is not using, piece by piece; pointing metaModule at the
// slot is the single write that makes it current. A crash part-way leaves
// the previous module in place, and alternating slots keeps the space used
// bounded however often a module is republished (spacetime dev).
func setMeta(ctx context.Context, sdb *store.Database, wasm []byte, hash string, owner abi.Identity, at time.Time) error {
	wrap := func(err error) error {
		return fmt.Errorf("server: recording the module of database %s: %w", sdb.Name(), err)
	}
	slot := "a"
	if cur, ok := sdb.Meta(metaModule); ok && string(cur) == "a" {
		slot = "b"
	}
	oldN := 0
	if b, ok := sdb.Meta(metaModule + "." + slot + ".n"); ok {
		fmt.Sscanf(string(b), "%d", &oldN)
	}
	n := 0
	for off := 0; off < len(wasm); off += moduleChunk {
		end := min(off+moduleChunk, len(wasm))
		if err := sdb.SetMeta(ctx, fmt.Sprintf("%s.%s.%d", metaModule, slot, n), wasm[off:end]); err != nil {
			return wrap(err)
		}
		n++
	}
	for i := n; i < oldN; i++ {
		if err := sdb.SetMeta(ctx, fmt.Sprintf("%s.%s.%d", metaModule, slot, i), nil); err != nil {
			return wrap(err)
		}
	}
	ownerText, _ := owner.MarshalText()
	for _, kv := range []struct {
		k string
		v []byte
	}{
		{metaModule + "." + slot + ".n", fmt.Appendf(nil, "%d %s", n, hash)},
		{metaModule, []byte(slot)}, // the switch
		{metaModuleHash, []byte(hash)},
		{metaOwner, ownerText},
		{metaPublishedAt, []byte(at.Format(time.RFC3339Nano))},
	} {
		if err := sdb.SetMeta(ctx, kv.k, kv.v); err != nil {
			return wrap(err)
		}
	}
	return nil
}

// loadModule reads the current module binary back and checks its hash.
func loadModule(sdb *store.Database) ([]byte, error) {
	slot, ok := sdb.Meta(metaModule)
	if !ok {
		return nil, errors.New("no module was recorded")
	}
	hdr, ok := sdb.Meta(metaModule + "." + string(slot) + ".n")
	if !ok {
		return nil, fmt.Errorf("module slot %q has no header", slot)
	}
	var n int
	var want string
	if _, err := fmt.Sscanf(string(hdr), "%d %s", &n, &want); err != nil {
		return nil, fmt.Errorf("module slot %q: bad header %q", slot, hdr)
	}
	var wasm []byte
	for i := range n {
		b, ok := sdb.Meta(fmt.Sprintf("%s.%s.%d", metaModule, slot, i))
		if !ok {
			return nil, fmt.Errorf("module slot %q lacks piece %d of %d", slot, i, n)
		}
		wasm = append(wasm, b...)
	}
	sum := sha256.Sum256(wasm)
	if got := hex.EncodeToString(sum[:]); got != want {
		return nil, fmt.Errorf("module slot %q: SHA-256 %s, recorded %s", slot, got, want)
	}
	return wasm, nil
}

// deleteDatabase drops name and everything in it.
func (s *Server) deleteDatabase(ctx context.Context, name string, p principal) error {
	s.publishMu.Lock()
	defer s.publishMu.Unlock()
	d, ok := s.lookup(name)
	if !ok {
		return fmt.Errorf("%w: %s", errNoSuchDB, name)
	}
	if !d.isOwner(p) {
		return fmt.Errorf("%w: only the owner of database %s may delete it", errNotOwner, name)
	}
	s.mu.Lock()
	delete(s.dbs, name)
	s.mu.Unlock()
	d.closeConnections(websocketGoingAway, "database deleted")
	d.close(ctx)
	if err := s.st.DropDatabase(ctx, name); err != nil {
		return fmt.Errorf("server: deleting database %s: %w", name, err)
	}
	s.log.Info("database deleted", "database", name, "by", p.Operator)
	return nil
}

// connections counts the open WebSockets of database name.
func (s *Server) connections(name string) int {
	d, ok := s.lookup(name)
	if !ok {
		return 0
	}
	d.connMu.Lock()
	defer d.connMu.Unlock()
	return len(d.conns)
}
