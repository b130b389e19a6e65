# agent/status: what the agent knows, for its HTTP API: the status store, the
# upstream monitors and the metrics format.
target_sources(pha_agent PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/metrics.cpp
  ${CMAKE_CURRENT_LIST_DIR}/monitor.cpp
  ${CMAKE_CURRENT_LIST_DIR}/store.cpp)
