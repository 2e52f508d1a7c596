import type { ChannelModule, ChannelProvider } from './channel.js';

/** The in-app inbox: a send stores the message for the user and announces it to open streams. */
export const inappModule: ChannelModule = {
  type: 'inapp',
  create(name, _fields, deps): ChannelProvider {
    return {
      name,
      type: 'inapp',
      recipientTypes: ['user_id'],
      validateTarget: (r) => (r.value.trim() === '' ? 'must be a user id' : undefined),
      async send({ delivery, content }) {
        await deps.inbox.add({
          appId: delivery.appId,
          userId: delivery.recipient.value,
          notificationId: delivery.notificationId,
          deliveryId: delivery.id,
          subject: content.subject,
          body: content.body,
        });
        return { kind: 'sent' };
      },
      close: async () => undefined,
    };
  },
};
