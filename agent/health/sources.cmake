# agent/health: circuit breakers and the health of each upstream target.
target_sources(pha_agent PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/breaker.cpp
  ${CMAKE_CURRENT_LIST_DIR}/checker.cpp
  ${CMAKE_CURRENT_LIST_DIR}/target.cpp)
