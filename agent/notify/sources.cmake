# agent/notify: webhooks (failover, recovery, redundancy, sync and auth events).
target_sources(pha_agent PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/rules.cpp
  ${CMAKE_CURRENT_LIST_DIR}/webhook.cpp)
