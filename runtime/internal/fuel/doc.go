// Package fuel meters WebAssembly modules by rewriting them: it decodes a
// binary down to every instruction of every function body, checks what the
// rewrite relies on, and returns a copy that counts the work it does in a
// global the host reads and writes.
//
// # The rewrite
//
// A defined, exported, mutable i64 global named [FuelGlobal] is appended
// (appending shifts no index; importing it would shift every defined
// global). The host sets it to the call's budget before a call
// (api.MutableGlobal) and reads it afterwards: the budget minus what is left
// is the energy used.
//
// Each function body is cut into straight-line segments at every
// control instruction. A segment is charged its instruction count, once, at
// its start, on a local copy of the fuel (a local is a register or a stack
// slot; a global is a load through the module context). The charge right
// after each loop instruction also checks: if the fuel is then below zero
// it is written back and the function executes unreachable. So does the
// charge at the entry of a function that calls another, unless a loop
// comes first (before any branch or call: a Go function's body is one
// such loop, so its head is the check). Those sites are enough: any
// unbounded execution passes through loop heads infinitely often, or makes
// infinitely many calls, and a function that calls checks before its first
// call; a function that makes no call and has no loop runs a bounded number
// of instructions, and its caller's next check (or the host, when it
// returns) sees what it spent. Every segment costs at least one unit, so a
// check site never spins for free.
// Calls to imported (host) functions add Config.HostCallCost, and bulk
// instructions (memory.fill/copy/init, memory.grow, table bulk operations)
// pay for the length on top of the stack, checked before they run.
// The local is written back to the global before every call to a defined
// function (and after each return, reloaded), before return and tail calls,
// and where the function ends. Energy is therefore deterministic: a function
// of the code and the path it takes, the same in every instance and process.
//
// # Slices
//
// With [Config.Refuel], the module also imports a host function,
// [MeterModule].[RefuelFunc] (type [] -> []), after its own function
// imports; it takes function index "function imports", and every defined
// function's index moves up by one: call, return_call and ref.func in
// bodies, ref.func in constant expressions (globals, element and data
// segments), element segments' index vectors, exports, the start function,
// and the name section's function and local names are all renumbered
// (label names, also keyed by function index, are dropped). The rewrite
// also appends one defined function of its own, after the module's (so no
// index moves for it), of type (i64) -> i64: a check site that finds the
// fuel below zero calls it with the fuel and takes its result as the new
// fuel. It writes the fuel to the global, calls refuel, reads the global
// back and traps if it is still below zero. (Inlining those steps at every
// check site put a host call and a trap in every loop's cold path, and
// the benchmark guest ran 12-17% slower than without refuel, in a noisy
// run; through the check function, 4-6%, in a quieter one.)
//
// A loop head does not call it from inside the loop: wazero's register
// allocator spills every value live across a call where the value is
// defined, so a call in a loop, however cold, put loads and stores on
// every iteration (up to 40% of a tight loop). A loop without parameters,
// in a function of at most 32 locals, is wrapped instead:
//
//	block $after (the loop's type) loop $retry block $refuel
//	  loop (the original) charge; br_if $refuel when below zero; ... end
//	  br $after
//	end refuel; br $retry end unreachable end
//
// Branches that cross the added blocks are renumbered. The cold path
// hands every local to a check function of its own type ((locals) ->
// (locals): one per list of local types, appended after the first) and
// takes them back as results, so that no value of the loop lives across
// the call; it adds the head's charge back to the fuel, which the head
// takes again, so energy does not depend on where refuel happens. The host
// ([Meter])
// keeps the call's budget in a reserve and puts at most a slice in the
// global: refuel moves the next slice over, less what the guest overspent,
// and leaves the fuel below zero once the reserve cannot cover that. The
// fuel left is always the global plus the reserve, so a check traps exactly
// when the whole budget is spent, and energy does not depend on the slice
// size (tested per instruction from slices of 1 unit up, and fuzzed).
// Refuel calls are not charged. Their point: compiled guest code
// cannot be preempted by Go, so a stop-the-world waits for the running call
// to reach a host call; with slices, one comes at least every slice. A
// module may not import from MeterModule itself ([ErrUnsupported]); a
// start function runs before the host has a Meter for the instance, on
// InitialFuel alone, and its check traps as without slices.
//
// The fuel trap and any other unreachable look the same from the host:
// "wasm error: unreachable". The host tells them apart by the global: it is
// below zero only after a fuel trap (or when a call returned having
// overspent in its last segments, which the host also counts as out of
// energy); with slices, the global plus the reserve is.
//
// Optionally ([Config.MaxCallDepth]) a second exported mutable i32 global,
// [DepthGlobal], counts the call depth left: the entry of each function
// that calls another checks it is above zero and decrements it, and each
// exit adds the one back (every callee has put back what it took). Not
// the entry's value written back from a local: that local lived across
// every call of the body, and the Go guest's typical work ran 3-4% slower
// with it than with the global incremented at each exit. At zero the
// function writes its fuel back and traps with the global at zero and the
// fuel at or above zero. A function that makes no call adds one frame at
// most to the stack the counter bounds, and does not count. Where the entry
// segment ends at a wrapped loop (a Go function's body), the entry does not
// branch: with no depth left it makes the fuel local negative (a select),
// and the loop head's cold path (which finds the global at -1: the entry
// took one from zero) writes back the fuel the entry left, sets
// the depth global to zero and traps: the same outcome, and on the hot path
// a select instead of a branch and a trap block per call (that check was
// most of what the counter cost a Go guest).
// To find every exit, each body is wrapped in one block typed like the
// function's results: a branch to the function's own label then leaves the
// block into the epilogue, and no branch depth changes.
//
// # Checks
//
// The rewrite must not turn an invalid module into a valid one: an invalid
// module that reads or writes the global or local index the rewrite adds
// would become valid and refill its own fuel. So every local and global
// index in every body is checked against the original module's, exports
// may neither use the names the rewrite adds nor name a global or function
// that does not exist (an export of the index __fuel takes would become
// valid), and the structure
// (sections, vectors, nesting, body sizes) is checked as it is read. Type
// checking is left to wazero, which validates the rewritten module: the
// inserted code takes nothing from and leaves nothing on the value stack,
// so it cannot change whether the original instructions type-check.
//
// Every section wazero decodes by counts (types, imports, functions,
// tables, memories, globals, exports, elements, code, data, and the custom
// "name" section) is read here first, each count checked against the bytes
// it claims: wazero allocates by those counts before reading the entries,
// and a few bytes claiming millions of exports or names cost it minutes
// and gigabytes.
//
// Exception handling and GC instructions are refused (a throw would leave
// frames without writing their fuel back); a module using them gets
// [ErrUnsupported]. [Limits] bound the module's shape (functions, body
// sizes, locals, tables, data) before anything is compiled.
package fuel
