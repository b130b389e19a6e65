#include "agent/platform/memory.hpp"

#include <malloc.h>

namespace pha {

HeapFigures release_free_memory() {
  malloc_trim(0);
  const auto m = mallinfo2();
  return {.in_use = m.uordblks + m.hblkhd, .free = m.fordblks};
}

void limit_malloc_arenas() {
  mallopt(M_ARENA_MAX, 2);
}

}  // namespace pha
