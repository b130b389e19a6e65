# agent/failover: choosing Proxmox hosts and AccountDB endpoints, failing over
# within a request, and the failover events.
target_sources(pha_agent PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/endpoint_pool.cpp
  ${CMAKE_CURRENT_LIST_DIR}/endpoints.cpp
  ${CMAKE_CURRENT_LIST_DIR}/events.cpp
  ${CMAKE_CURRENT_LIST_DIR}/hosts.cpp
  ${CMAKE_CURRENT_LIST_DIR}/router.cpp)
