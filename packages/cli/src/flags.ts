/** Removes a boolean flag (e.g. `--json`) from args; whether it was there. */
export function takeFlag(args: string[], flag: string): boolean {
  const i = args.indexOf(flag);
  if (i >= 0) args.splice(i, 1);
  return i >= 0;
}
