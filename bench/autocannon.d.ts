/** The part of autocannon's API the ingest benchmark uses (the package ships no types). */
declare module 'autocannon' {
  const autocannon: (options: Record<string, unknown>) => Promise<unknown>;
  export default autocannon;
}
