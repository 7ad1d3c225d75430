/* A shared object that is not an earshot plugin: no earshot_plugin_describe. */
__attribute__((visibility("default"))) int not_a_plugin(void);
int not_a_plugin(void) { return 42; }
