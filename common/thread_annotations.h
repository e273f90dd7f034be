// Clang thread-safety annotations (-Wthread-safety): which mutex guards which
// member, and which functions expect it held. Under clang each macro becomes
// the matching attribute and the compiler checks every access; under other
// compilers the macros are empty and the annotations are documentation only.
// `make thread-safety` builds the annotated libraries with clang and fails on
// a violation (CONTRIBUTING.md, "Locks").
//
// Clang's documentation of the attributes:
// https://clang.llvm.org/docs/ThreadSafetyAnalysis.html
#pragma once

#if defined(__clang__)
#define USERSD_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define USERSD_THREAD_ANNOTATION(x)
#endif

// On a class: its objects are capabilities (mutexes) named `x` in messages.
#define CAPABILITY(x) USERSD_THREAD_ANNOTATION(capability(x))
// On a class: an RAII object that holds a capability for its lifetime.
#define SCOPED_CAPABILITY USERSD_THREAD_ANNOTATION(scoped_lockable)

// On a member or global: read or written only while holding `x`.
#define GUARDED_BY(x) USERSD_THREAD_ANNOTATION(guarded_by(x))
// On a pointer: what it points to is read or written only while holding `x`.
#define PT_GUARDED_BY(x) USERSD_THREAD_ANNOTATION(pt_guarded_by(x))

// On a mutex: the order in which mutexes may be taken.
#define ACQUIRED_BEFORE(...) USERSD_THREAD_ANNOTATION(acquired_before(__VA_ARGS__))
#define ACQUIRED_AFTER(...) USERSD_THREAD_ANNOTATION(acquired_after(__VA_ARGS__))

// On a function: the caller must hold the capabilities (exclusively, or at
// least shared).
#define REQUIRES(...) USERSD_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) USERSD_THREAD_ANNOTATION(requires_shared_capability(__VA_ARGS__))
// On a function: the caller must not hold them (the function takes them).
#define EXCLUDES(...) USERSD_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))

// On a function: it takes, or gives up, the capabilities (none named: `this`).
#define ACQUIRE(...) USERSD_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) USERSD_THREAD_ANNOTATION(acquire_shared_capability(__VA_ARGS__))
#define RELEASE(...) USERSD_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) USERSD_THREAD_ANNOTATION(release_shared_capability(__VA_ARGS__))
// On a function returning bool: it took the capabilities when it returned `b`.
#define TRY_ACQUIRE(...) USERSD_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))

// On a function: it checks at run time that the capability is held, and the
// analysis assumes so after the call.
#define ASSERT_CAPABILITY(x) USERSD_THREAD_ANNOTATION(assert_capability(x))
// On a function: it returns the capability `x` (an accessor of a mutex).
#define RETURN_CAPABILITY(x) USERSD_THREAD_ANNOTATION(lock_returned(x))

// On a function: not checked. Each use says why in a comment.
#define NO_THREAD_SAFETY_ANALYSIS USERSD_THREAD_ANNOTATION(no_thread_safety_analysis)
