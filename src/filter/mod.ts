export { parseList } from "./parse.ts";
