# agent/accountdb: the AccountDB client (calls A-F) and its answers.
target_sources(pha_agent PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/client.cpp
  ${CMAKE_CURRENT_LIST_DIR}/types.cpp
)
