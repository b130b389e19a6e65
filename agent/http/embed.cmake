# Writes a C++ source that holds a file as a raw string literal.
# cmake -DINPUT=page.html -DOUTPUT=page.cpp -DHEADER=agent/http/x.hpp
#       -DNAMESPACE=pha::http -DFUNCTION=status_page_html -P embed.cmake
foreach(var INPUT OUTPUT HEADER NAMESPACE FUNCTION)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "embed.cmake: -D${var}=... is required")
  endif()
endforeach()

file(READ "${INPUT}" content)
# The literal ends at )pha_embed" wherever it appears: the file must not contain it.
set(delimiter "pha_embed")
string(FIND "${content}" ")${delimiter}\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "embed.cmake: ${INPUT} contains ')${delimiter}\"', "
                      "which would end the raw string literal early")
endif()

get_filename_component(input_name "${INPUT}" NAME)
file(WRITE "${OUTPUT}.tmp"
  "// Generated from ${input_name} by embed.cmake at build time: do not edit.\n"
  "#include \"${HEADER}\"\n\n"
  "namespace ${NAMESPACE} {\n\n"
  "std::string_view ${FUNCTION}() {\n"
  "  static constexpr std::string_view kContent = R\"${delimiter}(" "${content}" ")${delimiter}\";\n"
  "  return kContent;\n"
  "}\n\n"
  "}  // namespace ${NAMESPACE}\n")
file(RENAME "${OUTPUT}.tmp" "${OUTPUT}")
