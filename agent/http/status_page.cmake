# agent/http: the status page (GET /), written as plain HTML in
# status_page.html and compiled in as a string: the source is generated at
# build time, so editing the page rebuilds it.
set(PHA_STATUS_PAGE_CPP ${PROJECT_BINARY_DIR}/agent/generated/agent/http/status_page.cpp)
add_custom_command(
  OUTPUT ${PHA_STATUS_PAGE_CPP}
  COMMAND ${CMAKE_COMMAND}
          -DINPUT=${CMAKE_CURRENT_LIST_DIR}/status_page.html
          -DOUTPUT=${PHA_STATUS_PAGE_CPP}
          -DHEADER=agent/http/status_page.hpp
          -DNAMESPACE=pha::http
          -DFUNCTION=status_page_html
          -P ${CMAKE_CURRENT_LIST_DIR}/embed.cmake
  DEPENDS ${CMAKE_CURRENT_LIST_DIR}/status_page.html ${CMAKE_CURRENT_LIST_DIR}/embed.cmake
  COMMENT "Embedding agent/http/status_page.html"
  VERBATIM)
target_sources(pha_http PRIVATE ${PHA_STATUS_PAGE_CPP})
