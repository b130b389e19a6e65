# agent/sync: the whitelist cache, the sync plan and the sync loop.
target_sources(pha_agent PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/engine.cpp
  ${CMAKE_CURRENT_LIST_DIR}/loop.cpp
  ${CMAKE_CURRENT_LIST_DIR}/plan.cpp
  ${CMAKE_CURRENT_LIST_DIR}/whitelist_cache.cpp
)
