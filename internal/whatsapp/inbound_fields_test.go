package whatsapp

import (
	"encoding/json"
	"math"
	"testing"

	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	"google.golang.org/protobuf/proto"

	"github.com/remedy-run/remedy/webhook"
)

// A message of any kind with its fields missing, or with values a phone is free to
// put there, maps to a delivery that encodes: the inbound queue stores JSON, and a
// message that cannot be encoded is left unacknowledged for WhatsApp to deliver again —
// forever. Before, a location at NaN or ±Inf degrees (any sender can write those
// doubles) failed json.Marshal: a poison message that blocked nothing else but was
// redelivered and refused on every connect. Empty kinds keep their kind and no nil
// pointer is dereferenced.
func TestEveryKindWithMissingFieldsEncodes(t *testing.T) {
	t.Parallel()
	nan, inf := math.NaN(), math.Inf(1)
	msgs := map[string]*waE2E.Message{
		"empty":          {},
		"conversation":   {Conversation: proto.String("")},
		"extended":       {ExtendedTextMessage: &waE2E.ExtendedTextMessage{}},
		"image":          {ImageMessage: &waE2E.ImageMessage{}},
		"video":          {VideoMessage: &waE2E.VideoMessage{}},
		"audio":          {AudioMessage: &waE2E.AudioMessage{}},
		"document":       {DocumentMessage: &waE2E.DocumentMessage{}},
		"sticker":        {StickerMessage: &waE2E.StickerMessage{}},
		"location":       {LocationMessage: &waE2E.LocationMessage{}},
		"location NaN":   {LocationMessage: &waE2E.LocationMessage{DegreesLatitude: &nan, DegreesLongitude: proto.Float64(106.8)}},
		"location Inf":   {LocationMessage: &waE2E.LocationMessage{DegreesLatitude: proto.Float64(-6.2), DegreesLongitude: &inf}},
		"live location":  {LiveLocationMessage: &waE2E.LiveLocationMessage{DegreesLatitude: &nan}},
		"contact":        {ContactMessage: &waE2E.ContactMessage{}},
		"reaction":       {ReactionMessage: &waE2E.ReactionMessage{}},
		"bad utf-8 text": {Conversation: proto.String("caf\xe9")},
		"quote, no id":   {ExtendedTextMessage: &waE2E.ExtendedTextMessage{Text: proto.String("x"), ContextInfo: &waE2E.ContextInfo{}}},
	}
	infos := []types.MessageInfo{
		{}, // no sender, chat or id at all
		{MessageSource: types.MessageSource{Chat: types.NewJID("120363000000000001", types.GroupServer), IsGroup: true,
			Sender: types.NewJID("123456789", types.HiddenUserServer)}, ID: "3EB0X"},
	}
	for name, msg := range msgs {
		for _, info := range infos {
			m, _, ok := inbound(&events.Message{Info: info, Message: msg})
			if !ok {
				t.Errorf("%s: not handed on", name)
				continue
			}
			b, err := json.Marshal(webhook.NewMessage(m))
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			var back webhook.Event
			if err := json.Unmarshal(b, &back); err != nil || back.Message == nil || back.Message.Kind == "" {
				t.Errorf("%s: read back %v %s", name, err, b)
			}
			if m.Kind == webhook.KindLocation && m.Location == nil {
				t.Errorf("%s: a location without its data", name)
			}
		}
	}
}
