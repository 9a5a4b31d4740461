// Sanitizer defaults built into every fuzz target, so that a target run by hand (to
// replay an input) stops at the first UBSan report as under fuzz/run.sh.
extern "C" const char* __ubsan_default_options() {
  return "halt_on_error=1:print_stacktrace=1";
}
