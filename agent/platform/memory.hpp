#pragma once
// The agent's heap between cycles. A cycle allocates a few MB for a moment
// (the guest lists, list_vms's rows, request and answer bodies, their JSON trees)
// and frees them; glibc keeps freed pages that are not at the top of a heap,
// so a big node's agent would otherwise stay at its first cycle's size.

#include <cstddef>

namespace pha {

struct HeapFigures {
  std::size_t in_use = 0;  // bytes the program holds (mallinfo2 uordblks + hblkhd)
  std::size_t free = 0;    // bytes malloc keeps for reuse (fordblks)
};

// Hands the whole free pages of every malloc arena back to the kernel
// (malloc_trim). Cheap next to a cycle; call it when a cycle is done.
HeapFigures release_free_memory();

// Fewer malloc arenas than glibc's default of 8 per core: the agent's threads
// (sync, heartbeat, health checks, HTTP, senders) rarely allocate at the same
// time, and every arena keeps free pages of its own. Call it first in main().
void limit_malloc_arenas();

}  // namespace pha
