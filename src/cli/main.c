/* placeholder until the CLI lands; replaced by the CLI's own main.c */
int main(void) { return 1; }
