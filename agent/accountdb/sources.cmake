# agent/accountdb: the AccountDB client (the calls of docs/accountdb.md) and its answers.
target_sources(pha_agent PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/client.cpp
  ${CMAKE_CURRENT_LIST_DIR}/types.cpp
)
