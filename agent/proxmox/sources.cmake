# agent/proxmox: the Proxmox VE API client, the guest model and its parsers.
target_sources(pha_agent PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/client.cpp
  ${CMAKE_CURRENT_LIST_DIR}/guest.cpp
  ${CMAKE_CURRENT_LIST_DIR}/parse.cpp
  ${CMAKE_CURRENT_LIST_DIR}/permissions.cpp
)
