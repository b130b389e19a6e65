# agent/http: the agent's own HTTP server, its API and the status page.
target_sources(pha_agent PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/api.cpp
  ${CMAKE_CURRENT_LIST_DIR}/server.cpp
  ${CMAKE_CURRENT_LIST_DIR}/wire.cpp)
target_link_libraries(pha_agent PRIVATE OpenSSL::SSL)
