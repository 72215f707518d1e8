import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BedrockTurn, ConverseRequestBody } from '../support/fake-bedrock.js';
import { FakeBedrock } from '../support/fake-bedrock.js';
import { serverPerFile } from '../support/in-process.js';

/**
 * The orchestrator as an operator runs it with ADVISOR_PROVIDER=bedrock: the region, the credentials and the
 * endpoint come from the usual AWS settings (here the environment, the endpoint pointing at a fake Bedrock on
 * loopback), and the real AWS SDK inside the Strands SDK signs and sends the calls.
 */
const answer = { decision: null, risk: 'medium', confidence: 0.6, rings: [{ ring: 'prod', risk: 'medium', reasons: ['a tenth of its devices score low'] }], moves: [], summary: 'Watch prod: its lowest scores are low.' };
const fake = new FakeBedrock((body: ConverseRequestBody): BedrockTurn =>
  JSON.stringify(body.messages ?? []).includes('toolResult')
    ? { toolUse: [{ name: 'strands_structured_output', input: answer }], usage: { inputTokens: 1200, outputTokens: 70 } }
    : { toolUse: [{ name: 'analyser_verdict', input: {} }], usage: { inputTokens: 800, outputTokens: 20 } },
);
const saved = { ...process.env };

beforeAll(async () => {
  const endpoint = await fake.start();
  Object.assign(process.env, {
    AWS_ENDPOINT_URL_BEDROCK_RUNTIME: endpoint,
    AWS_REGION: 'eu-west-1',
    AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
    AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
    AWS_EC2_METADATA_DISABLED: 'true',
  });
});

const srv = serverPerFile({ DEFAULT_AGENTS: '4', ADVISOR_PROVIDER: 'bedrock' });

afterAll(async () => {
  await fake.close();
  process.env = saved;
});

describe('ADVISOR_PROVIDER=bedrock with the usual AWS settings', () => {
  it('writes advice with Nova through Bedrock: a signed call to the model in the region, and the record says so', async () => {
    const advice = await srv.call('POST', '/api/v1/advice', { subject: { ring: 'prod' } });
    expect(advice.status).toBe(201);
    expect(advice.body).toMatchObject({ risk: 'medium', summary: 'Watch prod: its lowest scores are low.', provider: { name: 'bedrock', model: 'us.amazon.nova-pro-v1:0', fallback: null }, cost: { inputTokens: 2000, outputTokens: 90 } });
    const first = fake.requests[0];
    expect(first?.path).toBe('/model/us.amazon.nova-pro-v1%3A0/converse-stream');
    expect(first?.httpVersion).toBe('2.0');
    expect(String(first?.headers.authorization)).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/bedrock\/aws4_request/);
  });

  it('reads gating factors with the model too', async () => {
    fake.requests.splice(0);
    const parsed = await srv.call('POST', '/api/v1/gating/parse', { text: 'halt if more than 2% fail' });
    // The fake answers the advice's schema, not the gate's: the answer fails the schema, and the grammar reads the text.
    expect(parsed.body).toMatchObject({ gate: { maxFailureShare: 0.02 }, provider: { name: 'analyser', model: 'us.amazon.nova-pro-v1:0' } });
    expect(String((parsed.body.provider as { fallback: string }).fallback)).toMatch(/^bedrock: /);
  });
});
